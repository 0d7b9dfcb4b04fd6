"""A vehicle's wallet in PaymentHub: deposits, withdrawals, balances, history and low-balance alerts.

The chain holds the money: balances are always read from PaymentHub, never from the store. The
store keeps what the chain cannot answer quickly: the history of a vehicle or an owner
(``wallet_events``, one row per (kind, reference), the reference being a transaction hash, so
recording twice is harmless) and each vehicle's low-balance thresholds (``balance_alerts``).

Assets are named by symbol: ``EUSD`` (ElectraUSD, 6 decimals) and ``ELC`` (18 decimals). Amounts
are integers in base units; amounts in the store are decimal text of the integer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_address, to_checksum_address
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from electra.chain.bindings import Electra, TxResult
from electra.chain.payments import Erc20Binding
from electra.errors import InvalidInput
from electra.payments.amounts import format_units
from electra.payments.events import BALANCE_LOW, BALANCE_RECOVERED, DEPOSITED, WITHDRAWN, EventBus
from electra.store.models import BalanceAlertRecord, WalletEventRecord

MAX_PAGE = 500
KINDS = ("deposit", "withdrawal", "topup", "charge", "earning", "payout")


@dataclass(frozen=True)
class Asset:
    symbol: str
    address: str
    decimals: int

    def show(self, units: int) -> str:
        return f"{format_units(units, self.decimals)} {self.symbol}"


@dataclass(frozen=True)
class WalletEvent:
    """One line of a wallet's history."""

    id: int | None
    kind: str
    vehicle_id: int | None
    owner: str | None
    asset: str
    amount: int
    reference: str
    at_ms: int

    @classmethod
    def of(cls, r: WalletEventRecord) -> WalletEvent:
        return cls(r.id, r.kind, r.vehicle_id, r.owner, r.asset, int(r.amount), r.reference, r.at_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "vehicle_id": self.vehicle_id,
            "owner": self.owner,
            "asset": self.asset,
            "amount": str(self.amount),
            "reference": self.reference,
            "at_ms": self.at_ms,
        }


@dataclass(frozen=True)
class HistoryPage:
    events: list[WalletEvent]
    next_before: int | None  # pass as ``before`` for the next (older) page; None: this was the last

    def to_json(self) -> dict[str, Any]:
        return {"events": [e.to_json() for e in self.events], "next_before": self.next_before}


@dataclass(frozen=True)
class AlertState:
    """A vehicle's low-balance threshold in one asset, as last checked against the chain."""

    vehicle_id: int
    asset: str
    threshold: int
    firing: bool
    balance: int | None
    updated_at_ms: int
    changed: bool = False  # this check flipped ``firing``

    def to_json(self) -> dict[str, Any]:
        return {
            "vehicle_id": self.vehicle_id,
            "asset": self.asset,
            "threshold": str(self.threshold),
            "firing": self.firing,
            "balance": None if self.balance is None else str(self.balance),
            "updated_at_ms": self.updated_at_ms,
            "changed": self.changed,
        }


@dataclass(frozen=True)
class WalletTransfer:
    """A deposit or withdrawal done: the transaction and the history line it left."""

    event: WalletEvent
    tx: TxResult
    balance: int  # the vehicle's balance in the asset afterwards


def _alert_state(r: BalanceAlertRecord, changed: bool = False) -> AlertState:
    balance = None if r.last_balance is None else int(r.last_balance)
    return AlertState(r.vehicle_id, r.asset, int(r.threshold), r.firing, balance, r.updated_at_ms, changed)


def owner_address(text: str) -> str:
    if not is_address(text):
        raise InvalidInput(f"{text!r} is not an address", "give a 0x-prefixed 20-byte hex address")
    return to_checksum_address(text)


class WalletService:
    def __init__(
        self,
        engine: Engine,
        electra: Electra,
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.electra = electra
        self.bus = bus if bus is not None else EventBus()
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # ------------------------------------------------------------ assets

    @cached_property
    def assets(self) -> dict[str, Asset]:
        """The assets PaymentHub holds for vehicles, by symbol, with their on-chain decimals."""
        e = self.electra
        out = {}
        for symbol, address in (("EUSD", e.stablecoin.address), ("ELC", e.token.address)):
            decimals = int(e.client.call(e.client.contract("ElectraUSD", address).functions.decimals()))
            out[symbol] = Asset(symbol, address, decimals)
        return out

    def asset(self, symbol: str) -> Asset:
        found = self.assets.get(symbol.upper())
        if found is None:
            raise InvalidInput(f"unknown asset {symbol!r}", f"use one of {', '.join(self.assets)}")
        return found

    # ------------------------------------------------------------ money in and out

    def vehicle_owner(self, vehicle_id: int) -> str:
        if not 1 <= vehicle_id <= self.electra.vehicles.total():
            raise InvalidInput(f"no vehicle with id {vehicle_id}", "register it with `electra vehicle register`")
        return self.electra.vehicles.vehicle(vehicle_id).owner

    def deposit(self, vehicle_id: int, symbol: str, amount: int, sender: LocalAccount | None = None) -> WalletTransfer:
        """Approves PaymentHub (if needed) and deposits ``amount`` for the vehicle, from ``sender``
        (the operator by default). Anyone may fund any vehicle."""
        asset = self.asset(symbol)
        payer = sender or self.electra.client.account
        owner = self.vehicle_owner(vehicle_id)
        if amount <= 0:
            raise InvalidInput(f"deposit amount {amount}", "deposit more than zero")
        held = Erc20Binding(self.electra.client, asset.address).balance_of(payer.address)
        if held < amount:
            fix = "top up with `electra wallet topup`" if asset.symbol == "EUSD" else "get ELC into that account first"
            raise InvalidInput(f"{payer.address} holds {asset.show(held)}, less than {asset.show(amount)}", fix)
        tx = self.electra.payments.deposit(vehicle_id, asset.address, amount, sender=payer)
        event = self._record("deposit", vehicle_id, owner, asset.symbol, amount, tx.tx_hash)
        balance = self.balance(vehicle_id, asset.symbol)
        self.bus.publish(DEPOSITED, {**event.to_json(), "from": payer.address, "balance": str(balance)})
        self.check_alerts(vehicle_id)
        return WalletTransfer(event, tx, balance)

    def withdraw(
        self, vehicle_id: int, symbol: str, amount: int, owner: LocalAccount, to: str | None = None
    ) -> WalletTransfer:
        """The vehicle's owner takes unused balance back (to ``to``, or to themselves)."""
        asset = self.asset(symbol)
        holder = self.vehicle_owner(vehicle_id)
        if owner.address != holder:
            raise InvalidInput(
                f"{owner.address} does not own vehicle {vehicle_id} (its owner is {holder})",
                "send with the owner's key",
            )
        if amount <= 0:
            raise InvalidInput(f"withdrawal amount {amount}", "withdraw more than zero")
        balance = self.balance(vehicle_id, asset.symbol)
        if balance < amount:
            raise InvalidInput(
                f"vehicle {vehicle_id} holds {asset.show(balance)}, less than {asset.show(amount)}",
                "withdraw at most the balance",
            )
        tx = self.electra.payments.withdraw(
            vehicle_id, asset.address, amount, owner, to=owner_address(to) if to else None
        )
        event = self._record("withdrawal", vehicle_id, holder, asset.symbol, amount, tx.tx_hash)
        after = self.balance(vehicle_id, asset.symbol)
        self.bus.publish(WITHDRAWN, {**event.to_json(), "to": to or holder, "balance": str(after)})
        self.check_alerts(vehicle_id)
        return WalletTransfer(event, tx, after)

    def withdraw_earnings(self, symbol: str, payee: LocalAccount, to: str | None = None) -> WalletTransfer:
        """A charger holder takes their whole earnings in an asset."""
        asset = self.asset(symbol)
        if self.electra.payments.earnings(payee.address, asset.address) == 0:
            raise InvalidInput(
                f"{payee.address} has no earnings in {asset.symbol}", "earnings come from settled sessions"
            )
        amount, tx = self.electra.payments.withdraw_earnings(asset.address, payee, to=owner_address(to) if to else None)
        event = self._record("payout", None, payee.address, asset.symbol, amount, tx.tx_hash)
        return WalletTransfer(event, tx, 0)

    # ------------------------------------------------------------ reading

    def balance(self, vehicle_id: int, symbol: str) -> int:
        return self.electra.payments.balance(vehicle_id, self.asset(symbol).address)

    def balances(self, vehicle_id: int) -> dict[str, int]:
        self.vehicle_owner(vehicle_id)
        return {symbol: self.electra.payments.balance(vehicle_id, a.address) for symbol, a in self.assets.items()}

    def earnings(self, owner: str) -> dict[str, int]:
        """What a charger holder has earned and not yet withdrawn, per asset."""
        who = owner_address(owner)
        return {symbol: self.electra.payments.earnings(who, a.address) for symbol, a in self.assets.items()}

    def history(
        self, vehicle_id: int | None = None, owner: str | None = None, limit: int = 20, before: int | None = None
    ) -> HistoryPage:
        """Newest first. Give exactly one of ``vehicle_id`` and ``owner``; an owner's history holds
        their vehicles' lines and their own earnings and payouts."""
        if (vehicle_id is None) == (owner is None):
            raise InvalidInput("history needs either a vehicle or an owner", "give exactly one of them")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"page size {limit}", f"use 1 to {MAX_PAGE}")
        q = select(WalletEventRecord)
        if vehicle_id is not None:
            q = q.where(WalletEventRecord.vehicle_id == vehicle_id)
        else:
            q = q.where(WalletEventRecord.owner == owner_address(str(owner)))
        if before is not None:
            q = q.where(WalletEventRecord.id < before)
        with Session(self.engine) as s:
            rows = list(s.scalars(q.order_by(WalletEventRecord.id.desc()).limit(limit + 1)))
        events = [WalletEvent.of(r) for r in rows[:limit]]
        return HistoryPage(events, events[-1].id if len(rows) > limit else None)

    def record(
        self, kind: str, vehicle_id: int | None, owner: str | None, asset: str, amount: int, reference: str
    ) -> bool:
        """Adds a history line; False if (kind, reference) is already there."""
        if kind not in KINDS:
            raise InvalidInput(f"wallet event kind {kind!r}", f"one of {', '.join(KINDS)}")
        try:
            with Session(self.engine) as s, s.begin():
                seen = s.scalar(
                    select(WalletEventRecord.id).where(
                        WalletEventRecord.kind == kind, WalletEventRecord.reference == reference
                    )
                )
                if seen is not None:
                    return False
                s.add(
                    WalletEventRecord(
                        vehicle_id=vehicle_id,
                        owner=owner,
                        kind=kind,
                        asset=asset,
                        amount=str(amount),
                        reference=reference,
                        at_ms=self._now_ms(),
                    )
                )
        except IntegrityError:
            return False  # a concurrent writer recorded the same (kind, reference) first
        return True

    def event(self, kind: str, reference: str) -> WalletEvent | None:
        with Session(self.engine) as s:
            r = s.scalar(
                select(WalletEventRecord).where(
                    WalletEventRecord.kind == kind, WalletEventRecord.reference == reference
                )
            )
            return WalletEvent.of(r) if r is not None else None

    def _record(
        self, kind: str, vehicle_id: int | None, owner: str | None, asset: str, amount: int, reference: str
    ) -> WalletEvent:
        self.record(kind, vehicle_id, owner, asset, amount, reference)
        event = self.event(kind, reference)
        assert event is not None
        return event

    # ------------------------------------------------------------ low-balance alerts

    def set_alert(self, vehicle_id: int, symbol: str, threshold: int) -> AlertState:
        """Alert when the vehicle's balance in ``symbol`` is below ``threshold`` base units; checks at once."""
        asset = self.asset(symbol)
        self.vehicle_owner(vehicle_id)
        if threshold <= 0:
            raise InvalidInput(f"alert threshold {threshold}", "use a positive amount, or remove the alert")
        with Session(self.engine) as s, s.begin():
            r = s.get(BalanceAlertRecord, (vehicle_id, asset.symbol))
            if r is None:
                s.add(
                    BalanceAlertRecord(
                        vehicle_id=vehicle_id,
                        asset=asset.symbol,
                        threshold=str(threshold),
                        firing=False,
                        updated_at_ms=self._now_ms(),
                    )
                )
            else:
                r.threshold = str(threshold)
        return next(a for a in self.check_alerts(vehicle_id) if a.asset == asset.symbol)

    def remove_alert(self, vehicle_id: int, symbol: str) -> bool:
        with Session(self.engine) as s, s.begin():
            r = s.get(BalanceAlertRecord, (vehicle_id, self.asset(symbol).symbol))
            if r is None:
                return False
            s.delete(r)
        return True

    def check_alerts(self, vehicle_id: int) -> list[AlertState]:
        """Compares the vehicle's on-chain balances with its thresholds, flips ``firing`` where it
        changed and publishes ``balance.low`` / ``balance.recovered`` for each flip."""
        with Session(self.engine) as s:
            records = list(
                s.scalars(
                    select(BalanceAlertRecord)
                    .where(BalanceAlertRecord.vehicle_id == vehicle_id)
                    .order_by(BalanceAlertRecord.asset)
                )
            )
        if not records:
            return []
        balances = {r.asset: self.balance(vehicle_id, r.asset) for r in records}
        now = self._now_ms()
        states = []
        with Session(self.engine) as s, s.begin():
            for r in s.scalars(
                select(BalanceAlertRecord)
                .where(BalanceAlertRecord.vehicle_id == vehicle_id)
                .order_by(BalanceAlertRecord.asset)
            ):
                if r.asset not in balances:
                    continue  # set while we read the chain; the next check covers it
                firing = balances[r.asset] < int(r.threshold)
                changed = firing != r.firing
                r.firing, r.last_balance, r.updated_at_ms = firing, str(balances[r.asset]), now
                states.append(_alert_state(r, changed))
        for a in states:
            if a.changed:
                self.bus.publish(BALANCE_LOW if a.firing else BALANCE_RECOVERED, a.to_json())
        return states

    def alerts(self, firing_only: bool = True) -> list[AlertState]:
        """Alerts as last checked, firing ones only unless asked for all."""
        q = select(BalanceAlertRecord).order_by(BalanceAlertRecord.vehicle_id, BalanceAlertRecord.asset)
        if firing_only:
            q = q.where(BalanceAlertRecord.firing.is_(True))
        with Session(self.engine) as s:
            return [_alert_state(r) for r in s.scalars(q)]

    def check_all_alerts(self) -> list[AlertState]:
        """Re-checks every vehicle that has an alert set."""
        with Session(self.engine) as s:
            vehicles = list(
                s.scalars(select(BalanceAlertRecord.vehicle_id).distinct().order_by(BalanceAlertRecord.vehicle_id))
            )
        return [a for v in vehicles for a in self.check_alerts(v)]
