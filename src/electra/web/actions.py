"""Signed web actions: a change the web app asks for off-chain is confirmed by the wallet allowed to
make it.

The pages write four things that live in the platform's store rather than on-chain: a fiat top-up
of a vehicle (through the sandbox provider), a charger's tariff, its lease, and stopping a charge.
Each is a two-step exchange. The page asks for the action (``POST /api/v1/web/actions``); the
server checks the parameters and who may do it, and answers with a statement to sign and a
one-time nonce. The wallet signs the text (EIP-191 ``personal_sign``). The page sends the signature
(``POST /api/v1/web/actions/{nonce}``); the server recovers the signer, checks again that it is
the account allowed to act (the vehicle's owner, the charger NFT's holder) and does it. A nonce
works once, for :data:`LIFETIME_S` seconds, and only for the action it was issued for.

The text is what the wallet shows the user, so it says everything the action does::

    127.0.0.1:8000 asks you to confirm an Electra action.

    Set the tariff of CP-BER-0001: 0.39 EUSD per kWh, 0 per hour, idle 0 per hour after 0 min, 0.5 per session.

    Account: 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
    Action: tariff
    Nonce: 3f6a...
    Expires At: 2026-01-05T10:05:00Z

Sign-in with Ethereum (EIP-4361) on the REST API is a separate, later step: where the API issues a
session, these per-action signatures remain the proof that the key holder agreed to each change.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import is_address, to_checksum_address
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from electra.errors import ElectraError, InvalidInput
from electra.store.models import WebActionRecord

LIFETIME_S = 300
MAX_PENDING = 10_000
KINDS = ("topup", "tariff", "lease", "stop")


class ActionRefused(ElectraError):
    """The signature does not come from the account, or the account may not do this."""


class ActionUnknown(InvalidInput):
    """No pending action has this nonce: never issued, used already, or expired."""


@dataclass(frozen=True)
class PendingAction:
    nonce: str
    kind: str
    account: str  # checksummed
    params: dict[str, Any]
    statement: str
    message: str
    expires_at: int  # unix seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "nonce": self.nonce,
            "kind": self.kind,
            "account": self.account,
            "params": self.params,
            "statement": self.statement,
            "message": self.message,
            "expires_at": self.expires_at,
        }


def checksum_account(text: str) -> str:
    if not isinstance(text, str) or not is_address(text):
        raise InvalidInput(f"{text!r} is not an account address", "connect a wallet and give its 0x address")
    return to_checksum_address(text)


def action_message(host: str, statement: str, account: str, kind: str, nonce: str, expires_at: int) -> str:
    expires = dt.datetime.fromtimestamp(expires_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{host} asks you to confirm an Electra action.\n\n{statement}\n\n"
        f"Account: {account}\nAction: {kind}\nNonce: {nonce}\nExpires At: {expires}"
    )


def recover_signer(message: str, signature: str) -> str:
    """The address that signed ``message`` with EIP-191 personal_sign."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError as exc:
        raise InvalidInput("the signature is not hex", "send the wallet's 0x signature as it is") from exc
    if len(raw) != 65:
        raise InvalidInput(f"a signature of {len(raw)} bytes", "an EIP-191 signature has 65 bytes")
    try:
        return str(Account.recover_message(encode_defunct(text=message), signature=raw))
    except Exception as exc:
        raise ActionRefused(f"cannot recover a signer from the signature: {exc}", "sign the message again") from exc


class ActionBook:
    """Actions issued and waiting for their signature: in the store when given an engine (every API
    process shares them and a restart keeps them; taking one deletes its row, so it is done once),
    else in this process's memory."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        new_nonce: Callable[[], str] = lambda: secrets.token_hex(16),
        lifetime_s: int = LIFETIME_S,
        max_pending: int = MAX_PENDING,
        engine: Engine | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._new_nonce = new_nonce
        self.lifetime_s = lifetime_s
        self.max_pending = max_pending
        self._pending: dict[str, PendingAction] = {}
        self._lock = threading.Lock()

    def issue(self, host: str, kind: str, account: str, params: dict[str, Any], statement: str) -> PendingAction:
        if kind not in KINDS:
            raise InvalidInput(f"unknown action {kind!r}", f"one of {', '.join(KINDS)}")
        who = checksum_account(account)
        now = int(self._clock())
        nonce = self._new_nonce()
        expires_at = now + self.lifetime_s
        action = PendingAction(
            nonce,
            kind,
            who,
            params,
            statement,
            action_message(host, statement, who, kind, nonce, expires_at),
            expires_at,
        )
        if self._engine is not None:
            self._store(action, now)
            return action
        with self._lock:
            self._drop_expired(now)
            if len(self._pending) >= self.max_pending:
                raise ActionRefused("too many actions wait for a signature", "sign or let them expire, then retry")
            self._pending[nonce] = action
        return action

    def _store(self, action: PendingAction, now: int) -> None:
        assert self._engine is not None
        with Session(self._engine) as s, s.begin():
            s.execute(delete(WebActionRecord).where(WebActionRecord.expires_at <= now))
            if s.scalar(select(func.count()).select_from(WebActionRecord)) >= self.max_pending:
                raise ActionRefused("too many actions wait for a signature", "sign or let them expire, then retry")
            s.add(
                WebActionRecord(
                    nonce=action.nonce,
                    kind=action.kind,
                    account=action.account,
                    params=json.dumps(action.params, sort_keys=True),
                    statement=action.statement,
                    message=action.message,
                    expires_at=action.expires_at,
                )
            )

    def _take_stored(self, nonce: str, signature: str, now: int) -> PendingAction:
        assert self._engine is not None
        with Session(self._engine) as s:
            row = s.get(WebActionRecord, nonce)
        if row is None or row.expires_at <= now:
            raise ActionUnknown(f"no pending action with nonce {nonce!r}", "ask for the action again")
        action = PendingAction(
            row.nonce, row.kind, row.account, json.loads(row.params), row.statement, row.message, row.expires_at
        )
        self._check_signer(action, signature)
        with self._engine.begin() as c:  # taking it is deleting it: one taker wins, whichever process
            taken = c.execute(
                delete(WebActionRecord).where(WebActionRecord.nonce == nonce, WebActionRecord.expires_at > now)
            ).rowcount
        if taken != 1:
            raise ActionUnknown(f"the action with nonce {nonce!r} was just taken or expired", "ask for it again")
        return action

    @staticmethod
    def _check_signer(action: PendingAction, signature: str) -> None:
        signer = recover_signer(action.message, signature)
        if signer != action.account:
            raise ActionRefused(
                f"the action was signed by {signer}, not by {action.account}", "sign with the account that asked"
            )

    def take(self, nonce: str, signature: str) -> PendingAction:
        """The action, once: the signature must recover to its account. A wrong signature leaves it
        pending (the right wallet may still sign it)."""
        now = int(self._clock())
        if self._engine is not None:
            return self._take_stored(nonce, signature, now)
        with self._lock:
            self._drop_expired(now)
            action = self._pending.get(nonce)
            if action is None:
                raise ActionUnknown(f"no pending action with nonce {nonce!r}", "ask for the action again")
            self._check_signer(action, signature)
            del self._pending[nonce]
        return action

    def _drop_expired(self, now: int) -> None:
        for n in [n for n, a in self._pending.items() if a.expires_at <= now]:
            del self._pending[n]
