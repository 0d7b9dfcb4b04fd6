"""Charge authorizations a vehicle hands to the platform before it charges.

A vehicle (its device key or its owner; an ERC-1271 smart-wallet owner too) signs an EIP-712
``ChargeAuthorization`` for one charger, one asset, a maximum amount, an expiry and a nonce
(docs/payments.md). The platform checks it when it arrives, so that a forged or stale one is refused
at once rather than at settlement, keeps it, and binds it to the session it pays for. PaymentHub
checks everything again on-chain when the session settles.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from electra.chain import signatures
from electra.chain.payments import MAX_NONCE, ChargeAuthorization, PaymentHubBinding, SignedAuthorization
from electra.errors import InvalidInput
from electra.store.models import ChargeAuthorizationRecord

ERC1271_MAGIC = bytes.fromhex("1626ba7e")


@dataclass(frozen=True)
class StoredAuthorization:
    id: int
    signed: SignedAuthorization
    signer: str
    session_id: int | None

    @property
    def authorization(self) -> ChargeAuthorization:
        return self.signed.authorization


class AuthorizationBook:
    def __init__(
        self,
        engine: Engine,
        hub: PaymentHubBinding,
        vehicle_keys: Callable[[int], tuple[str, str]],
        clock: Callable[[], float] = time.time,
        erc1271: Callable[[str, bytes, bytes], bool] | None = None,
    ) -> None:
        """``vehicle_keys(vehicle_id)`` gives the vehicle's (device, owner) addresses from the
        VehicleLedger; ``erc1271(owner, digest, signature)`` asks a contract owner whether it
        signed (``isValidSignature``)."""
        self.engine = engine
        self.hub = hub
        self.vehicle_keys = vehicle_keys
        self.clock = clock
        self.erc1271 = erc1271

    def submit(self, signed: SignedAuthorization) -> StoredAuthorization:
        a = signed.authorization
        now = int(self.clock())
        if a.expiry <= now:
            raise InvalidInput(f"the authorization expired at {a.expiry} (now {now})", "sign a new one")
        if a.max_amount <= 0:
            raise InvalidInput("the authorization allows nothing (max amount 0)", "authorize a positive maximum")
        if not self.hub.is_asset_allowed(a.asset):
            raise InvalidInput(f"asset {a.asset} is not allowed by PaymentHub", "authorize EUSD or ELC")
        if a.nonce > MAX_NONCE:
            raise InvalidInput(
                f"nonce {a.nonce} is above {MAX_NONCE}, the largest PaymentHub accepts",
                "count nonces up from the vehicle's last one",
            )
        last_nonce = self.hub.account(a.vehicle_id, a.asset)[1]
        if a.nonce <= last_nonce:
            raise InvalidInput(
                f"nonce {a.nonce} is used (the vehicle's last settled nonce is {last_nonce})",
                f"sign with nonce {last_nonce + 1} or higher",
            )
        signer = self._signer(signed)
        row = ChargeAuthorizationRecord(
            vehicle_id=a.vehicle_id,
            charger_token_id=a.charger_id,
            asset=a.asset,
            max_amount=str(a.max_amount),
            expiry=a.expiry,
            nonce=a.nonce,
            signature="0x" + signed.signature.hex(),
            signer=signer,
            created_at_ms=int(self.clock() * 1000),
        )
        try:
            with Session(self.engine) as s, s.begin():
                s.add(row)
                s.flush()
                row_id = row.id
        except IntegrityError as exc:
            raise InvalidInput(
                f"vehicle {a.vehicle_id} already submitted nonce {a.nonce} for this asset", "use the next nonce"
            ) from exc
        return StoredAuthorization(row_id, signed, signer, None)

    def _signer(self, signed: SignedAuthorization) -> str:
        """Who signed: the vehicle's device or owner (ECDSA, low-s only, as PaymentHub recovers), or
        an ERC-1271 owner wallet that says it did."""
        a = signed.authorization
        device, owner = self.vehicle_keys(a.vehicle_id)
        typed = a.typed_data(self.hub.client.chain_id, self.hub.address)
        refused: InvalidInput | None = None
        try:
            recovered = signatures.recover(typed, signed.signature)
        except InvalidInput as exc:  # not an ECDSA signature PaymentHub takes; a wallet may still own it
            recovered, refused = "", exc
        if recovered and recovered.lower() in (device.lower(), owner.lower()):
            return recovered
        if self.erc1271 is not None and self.erc1271(owner, self.hub.digest(a), signed.signature):
            return owner
        raise InvalidInput(
            f"the authorization for vehicle {a.vehicle_id} is not signed by its device {device} or owner {owner}"
            + (f" ({refused.cause})" if refused is not None else ""),
            "sign with the vehicle's device key or its owner's, for this chain's PaymentHub",
        )

    def usable(self, vehicle_id: int, charger_token_id: int) -> StoredAuthorization | None:
        """The newest unused, unexpired authorization of this vehicle for this charger."""
        now = int(self.clock())
        with Session(self.engine) as s:
            row = s.scalars(
                select(ChargeAuthorizationRecord)
                .where(
                    ChargeAuthorizationRecord.vehicle_id == vehicle_id,
                    ChargeAuthorizationRecord.charger_token_id == charger_token_id,
                    ChargeAuthorizationRecord.session_id.is_(None),
                    ChargeAuthorizationRecord.expiry > now,
                )
                .order_by(ChargeAuthorizationRecord.id.desc())
                .limit(1)
            ).first()
        return _stored(row) if row is not None else None

    def ensure(
        self, device: Any, vehicle_id: int, charger_token_ids: list[int], asset: str, max_amount: int, lifetime_s: int
    ) -> int:
        """What a vehicle's wallet agent does: signs (with ``device``) and submits an authorization
        for each charger that has no usable one. Nonces follow the highest one used on-chain or
        submitted. Returns how many it submitted."""
        last_nonce = self.hub.account(vehicle_id, asset)[1]
        with Session(self.engine) as s:
            stored = s.scalars(
                select(ChargeAuthorizationRecord.nonce)
                .where(ChargeAuthorizationRecord.vehicle_id == vehicle_id, ChargeAuthorizationRecord.asset == asset)
                .order_by(ChargeAuthorizationRecord.nonce.desc())
                .limit(1)
            ).first()
        nonce = max(last_nonce, stored or 0)
        submitted = 0
        for token_id in charger_token_ids:
            current = self.usable(vehicle_id, token_id)
            if current is not None and current.authorization.nonce > last_nonce:
                continue
            nonce += 1
            auth = ChargeAuthorization(vehicle_id, token_id, asset, max_amount, int(self.clock()) + lifetime_s, nonce)
            self.submit(self.hub.sign(device, auth))
            submitted += 1
        return submitted

    def for_session(self, session_id: int) -> StoredAuthorization | None:
        with Session(self.engine) as s:
            row = s.scalars(
                select(ChargeAuthorizationRecord).where(ChargeAuthorizationRecord.session_id == session_id)
            ).first()
        return _stored(row) if row is not None else None


def _stored(row: ChargeAuthorizationRecord) -> StoredAuthorization:
    auth = ChargeAuthorization(
        row.vehicle_id, row.charger_token_id, row.asset, int(row.max_amount), row.expiry, row.nonce
    )
    return StoredAuthorization(
        row.id, SignedAuthorization(auth, bytes.fromhex(row.signature[2:])), row.signer, row.session_id
    )
