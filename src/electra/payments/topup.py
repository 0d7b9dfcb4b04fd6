"""Fiat top-ups credited exactly once: a verified provider event becomes ElectraUSD in a vehicle's
PaymentHub balance.

Per top-up (``provider_ref``, the provider's id of the paid intent) the service

1. records it in ``topups`` as ``received`` (a second event for the same ref finds the row);
2. mints ElectraUSD to the operator with ``topUpId = keccak256(provider_ref)``, unless a
   ``ToppedUp`` event with that id is already on the chain;
3. approves PaymentHub and deposits the amount for the vehicle, unless that deposit is already on the
   chain (see :meth:`TopUpService._deposit_once`);
4. marks the row ``credited`` with the deposit's transaction hash and adds a ``topup`` line to the
   vehicle's history, in one database transaction.

A crash anywhere leaves the row ``received``; the provider's retry (or :meth:`TopUpService.resume`)
goes through the same steps, and steps 2 and 3 find on the chain what was already done. ElectraUSD
itself has no replay guard: ``mint`` accepts the same ``topUpId`` twice, so the check of step 2 is
what prevents a double mint (docs/wallets.md).

Within one process top-ups are serialized by a lock; across processes on PostgreSQL the ``topups``
row is locked (SELECT ... FOR UPDATE) while a top-up is credited.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from electra.chain.bindings import Electra
from electra.errors import ElectraError, InvalidInput
from electra.payments.amounts import cents_to_units
from electra.payments.events import TOPUP_CREDITED, EventBus
from electra.payments.providers import CheckoutIntent, PaymentProvider, TopUpEvent
from electra.payments.wallet import WalletService
from electra.store.models import TopUpRecord, WalletEventRecord

STABLECOIN = "EUSD"


class TopUpFailed(ElectraError):
    """A verified top-up could not be credited now (the chain is down, a transaction failed); it
    stays ``received`` and the next delivery of the webhook tries again."""


@dataclass(frozen=True)
class TopUpOutcome:
    status: str  # credited | duplicate | failed
    provider: str
    provider_ref: str
    vehicle_id: int
    amount_cents: int
    currency: str
    amount: int  # ElectraUSD base units
    record_status: str  # the row's status now: received | credited | failed
    tx_hash: str | None = None  # the deposit into PaymentHub
    mint_tx: str | None = None
    minted_now: bool = False
    deposited_now: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "provider": self.provider,
            "provider_ref": self.provider_ref,
            "vehicle_id": self.vehicle_id,
            "amount_cents": self.amount_cents,
            "currency": self.currency,
            "amount": str(self.amount),
            "asset": STABLECOIN,
            "record_status": self.record_status,
            "tx_hash": self.tx_hash,
            "mint_tx": self.mint_tx,
        }


@dataclass(frozen=True)
class _Mint:
    tx_hash: str
    block_number: int
    minted_now: bool


def top_up_id(provider_ref: str) -> bytes:
    """ElectraUSD's ``topUpId`` of a top-up: keccak256 of the provider's reference (UTF-8)."""
    return keccak(text=provider_ref)


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


class TopUpService:
    def __init__(
        self,
        engine: Engine,
        electra: Electra,
        wallet: WalletService | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.electra = electra
        self.wallet = wallet if wallet is not None else WalletService(engine, electra, clock=clock)
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def bus(self) -> EventBus:
        return self.wallet.bus

    def checkout(self, provider: PaymentProvider, vehicle_id: int, amount_cents: int, currency: str) -> CheckoutIntent:
        """Asks the provider for a checkout for a vehicle that exists."""
        self.wallet.vehicle_owner(vehicle_id)
        return provider.create_intent(vehicle_id, amount_cents, currency)

    def units(self, amount_cents: int) -> int:
        return cents_to_units(amount_cents, self.wallet.asset(STABLECOIN).decimals)

    def handle(self, provider: str, event: TopUpEvent) -> TopUpOutcome:
        """Applies a verified provider event; safe to call any number of times with the same event."""
        units = self.units(event.amount_cents)
        with self._lock:
            row = self._receive(provider, event, units)
            if row.status == "credited":
                return self._outcome("duplicate", row)
            if event.status == "failed":
                return self._mark_failed(row)
            return self._credit(event.provider_ref)

    def resume(self) -> list[TopUpOutcome]:
        """Credits the top-ups left ``received`` by a crash (the provider would retry them too)."""
        with Session(self.engine) as s:
            refs = list(s.scalars(select(TopUpRecord.provider_ref).where(TopUpRecord.status == "received")))
        out = []
        with self._lock:
            for ref in refs:
                out.append(self._credit(ref))
        return out

    def get(self, provider_ref: str) -> TopUpRecord | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.get(TopUpRecord, provider_ref)

    # ------------------------------------------------------------ steps

    def _receive(self, provider: str, event: TopUpEvent, units: int) -> TopUpRecord:
        for _ in range(2):
            try:
                with Session(self.engine, expire_on_commit=False) as s, s.begin():
                    row = s.get(TopUpRecord, event.provider_ref)
                    if row is None:
                        row = TopUpRecord(
                            provider_ref=event.provider_ref,
                            provider=provider,
                            vehicle_id=event.vehicle_id,
                            fiat_amount_cents=event.amount_cents,
                            currency=event.currency,
                            amount=str(units),
                            status="received",
                            created_at_ms=int(self._clock() * 1000),
                        )
                        s.add(row)
                    elif (row.provider, row.vehicle_id, row.fiat_amount_cents, row.currency) != (
                        provider,
                        event.vehicle_id,
                        event.amount_cents,
                        event.currency,
                    ):
                        raise InvalidInput(
                            f"top-up {event.provider_ref} was first received for vehicle {row.vehicle_id}, "
                            f"{row.fiat_amount_cents} {row.currency} cents from {row.provider}; this event differs",
                            "check the provider's events; nothing was credited for this one",
                        )
                    return row
            except IntegrityError:
                continue  # another process inserted it between our read and our write: read theirs
        raise TopUpFailed(f"cannot record top-up {event.provider_ref}", "retry")

    def _mark_failed(self, row: TopUpRecord) -> TopUpOutcome:
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(TopUpRecord)
                .where(TopUpRecord.provider_ref == row.provider_ref, TopUpRecord.status != "credited")
                .values(status="failed")
            )
        fresh = self.get(row.provider_ref)
        assert fresh is not None
        return self._outcome("failed" if row.status != "failed" else "duplicate", fresh)

    def _credit(self, provider_ref: str) -> TopUpOutcome:
        operator = self.electra.client.account.address
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            row = s.get(TopUpRecord, provider_ref, with_for_update=True)
            if row is None:
                raise TopUpFailed(f"top-up {provider_ref} is not recorded", "deliver its webhook first")
            if row.status == "credited":
                return self._outcome("duplicate", row)  # credited by another process while we waited
            units = int(row.amount)
            owner = self.wallet.vehicle_owner(row.vehicle_id)
            mint = self._mint_once(provider_ref, units)
            deposit_tx, deposited_now = self._deposit_once(s, row.vehicle_id, units, operator, mint)
            self._finish(s, row, deposit_tx, owner)
        outcome = self._outcome(
            "credited",
            row,
            mint_tx=mint.tx_hash,
            minted_now=mint.minted_now,
            deposited_now=deposited_now,
        )
        self.bus.publish(TOPUP_CREDITED, outcome.to_json())
        self.wallet.check_alerts(row.vehicle_id)
        return outcome

    def _mint_once(self, provider_ref: str, units: int) -> _Mint:
        """Mints to the operator unless a ToppedUp event with this top-up's id is already on the chain."""
        coin = self.electra.stablecoin
        operator = self.electra.client.account.address
        topup_id = top_up_id(provider_ref)
        logs = coin.contract.events.ToppedUp().get_logs(
            from_block=self.electra.deployment.block_number, argument_filters={"topUpId": topup_id}
        )
        if logs:
            args = logs[0]["args"]
            if args["to"] != operator or int(args["amount"]) != units:
                raise InvalidInput(
                    f"top-up {provider_ref} was already minted as {args['amount']} base units to {args['to']}",
                    "reconcile it by hand: this event does not match that mint",
                )
            return _Mint(_hex(logs[0]["transactionHash"]), int(logs[0]["blockNumber"]), False)
        tx = coin.mint(operator, units, topup_id)
        return _Mint(tx.tx_hash, tx.block_number, True)

    def _deposit_once(self, s: Session, vehicle_id: int, units: int, operator: str, mint: _Mint) -> tuple[str, bool]:
        """Deposits the minted amount for the vehicle, unless that deposit is already on the chain.

        The deposit carries no top-up id, so after a mint found on the chain we look for the
        operator's deposits of exactly this amount for this vehicle since the mint's block, and take
        one that no credited top-up and no recorded deposit claims. Top-ups are serialized, so such
        a deposit can only be this top-up's own. After a fresh mint no search is needed: the deposit
        always comes after its mint.
        """
        hub = self.electra.payments
        asset = self.wallet.asset(STABLECOIN).address
        if not mint.minted_now:
            logs = hub.contract.events.Deposited().get_logs(
                from_block=mint.block_number,
                argument_filters={"vehicleId": vehicle_id, "asset": asset, "from": operator},
            )
            hashes = [_hex(lg["transactionHash"]) for lg in logs if int(lg["args"]["amount"]) == units]
            if hashes:
                claimed = set(s.scalars(select(TopUpRecord.tx_hash).where(TopUpRecord.tx_hash.in_(hashes))))
                claimed |= set(
                    s.scalars(select(WalletEventRecord.reference).where(WalletEventRecord.reference.in_(hashes)))
                )
                free = [h for h in hashes if h not in claimed]
                if free:
                    return free[0], False
        try:
            tx = hub.deposit(vehicle_id, asset, units)
        except ElectraError as exc:
            raise TopUpFailed(
                f"minted {units} base units for vehicle {vehicle_id} but the deposit failed: {exc.one_line()}",
                "the next delivery of the webhook deposits it (the mint is not repeated)",
            ) from exc
        return tx.tx_hash, True

    def _finish(self, s: Session, row: TopUpRecord, deposit_tx: str, owner: str) -> None:
        row.status = "credited"
        row.tx_hash = deposit_tx
        seen = s.scalar(
            select(WalletEventRecord.id).where(
                WalletEventRecord.kind == "topup", WalletEventRecord.reference == row.provider_ref
            )
        )
        if seen is None:
            s.add(
                WalletEventRecord(
                    vehicle_id=row.vehicle_id,
                    owner=owner,
                    kind="topup",
                    asset=STABLECOIN,
                    amount=row.amount,
                    reference=row.provider_ref,
                    at_ms=int(self._clock() * 1000),
                )
            )

    @staticmethod
    def _outcome(status: str, row: TopUpRecord, **kw: Any) -> TopUpOutcome:
        return TopUpOutcome(
            status=status,
            provider=row.provider,
            provider_ref=row.provider_ref,
            vehicle_id=row.vehicle_id,
            amount_cents=row.fiat_amount_cents,
            currency=row.currency,
            amount=int(row.amount),
            record_status=row.status,
            tx_hash=row.tx_hash,
            **kw,
        )
