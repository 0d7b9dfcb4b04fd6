"""From a charger's session to a charge: admission at the start, the bill at the end.

At the start (:class:`PaymentGate`) the central system asks whether this vehicle may charge here,
now, and pay: the charger's lease must admit it, and a vehicle needs a fresh signed charge
authorization for this charger backed by its deposit on PaymentHub. The answer uses OCPP 2.0.1's
words (``NoCredit``, ``NotAtThisLocation``, ``NotAtThisTime``); a 1.6 charger hears ``Invalid``.

At the end (:class:`Biller`) a completed session becomes one row of the settlement outbox: the
tariff applied to the metered usage, the authorization that pays for it and the hash of its record.
The sessions table is the outbox's source: the biller picks up every completed session that has no
settlement row yet, so a crash between a session's completion and its bill loses nothing, and the
row's primary key (the session id) makes billing a session twice impossible. The same transaction
logs the session's record in the tamper-evident session log (:mod:`electra.store.session_log`), so
every billed session gets a sequence number and its record can be anchored and proved later.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from electra.chain.payments import PaymentHubBinding
from electra.domain.record import SessionRecord as RecordLeaf
from electra.domain.tariff import Tariff, Usage
from electra.errors import InvalidInput
from electra.payments.authorizations import AuthorizationBook
from electra.payments.tariffs import LeaseBook, TariffBook
from electra.store.models import SessionRecord, SettlementRecord
from electra.store.session_log import SessionLog

LOG = logging.getLogger("electra.billing")

PENDING, BATCHED, SETTLED, REJECTED, MANUAL = "pending", "batched", "settled", "rejected", "manual"


@dataclass(frozen=True)
class GateDecision:
    status: str  # Accepted | NoCredit | NotAtThisLocation | NotAtThisTime
    reason: str = ""
    authorization_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "Accepted"


class PaymentGate:
    def __init__(
        self,
        authorizations: AuthorizationBook,
        leases: LeaseBook,
        hub: PaymentHubBinding,
        token_id_of: Callable[[str], int],
    ) -> None:
        self.authorizations = authorizations
        self.leases = leases
        self.hub = hub
        self.token_id_of = token_id_of

    def check(self, charger_id: str, vehicle_id: int | None, at_ms: int) -> GateDecision:
        ok, why = self.leases.get(charger_id).admits(vehicle_id, at_ms)
        if not ok:
            return GateDecision("NotAtThisTime" if "hours" in why else "NotAtThisLocation", why)
        if vehicle_id is None:
            return GateDecision("Accepted", "a driver's token: billed outside PaymentHub")
        auth = self.authorizations.usable(vehicle_id, self.token_id_of(charger_id))
        if auth is None:
            return GateDecision("NoCredit", f"vehicle {vehicle_id} has no fresh charge authorization for {charger_id}")
        a = auth.authorization
        balance, last_nonce = self.hub.account(vehicle_id, a.asset)
        if a.nonce <= last_nonce:
            return GateDecision(
                "NoCredit", f"vehicle {vehicle_id}'s authorization has nonce {a.nonce}, already passed ({last_nonce})"
            )
        if balance < a.max_amount:
            return GateDecision(
                "NoCredit",
                f"vehicle {vehicle_id} holds {balance} on PaymentHub, less than the {a.max_amount} it authorized",
            )
        return GateDecision("Accepted", "", auth.id)


class Biller:
    def __init__(
        self,
        engine: Engine,
        tariffs: TariffBook,
        authorizations: AuthorizationBook,
        assets: dict[str, str],
        token_id_of: Callable[[str], int],
        clock: Callable[[], float] = time.time,
        log: SessionLog | None = None,
        price_in_force: Callable[[str, int], Tariff | None] | None = None,
    ) -> None:
        """``assets`` maps a tariff's asset symbol to the token's address. ``price_in_force`` gives
        the dynamic price a session pays, by charger and start time (None: the owner's tariff)."""
        self.engine = engine
        self.tariffs = tariffs
        self.authorizations = authorizations
        self.assets = assets
        self.token_id_of = token_id_of
        self.clock = clock
        self.log = log or SessionLog(engine, clock=clock)
        self.price_in_force = price_in_force

    def sweep(self, limit: int = 500) -> int:
        """Bills completed sessions that have no settlement row yet. Returns how many it billed."""
        with Session(self.engine) as s:
            rows = s.scalars(
                select(SessionRecord)
                .outerjoin(SettlementRecord, SettlementRecord.session_id == SessionRecord.id)
                .where(SessionRecord.status == "completed", SettlementRecord.session_id.is_(None))
                .order_by(SessionRecord.id)
                .limit(limit)
            ).all()
        billed = 0
        for row in rows:
            bill, record = self.bill(row)
            try:
                with Session(self.engine) as s, s.begin():
                    s.add(bill)
                    # Every completed session passes here, settled on-chain or not (a driver's
                    # token, a flagged meter, no authorization: status manual), so each gets its
                    # record logged with a seq, in the transaction of its bill: both or neither.
                    self.log.append_record(s.connection(), record, row.charger_id, at_ms=bill.created_at_ms)
                billed += 1
            except IntegrityError:
                LOG.info("session %s was billed by another worker", row.id)
        return billed

    def bill(self, row: SessionRecord) -> tuple[SettlementRecord, RecordLeaf]:
        """The settlement row of a completed session, and the record whose leaf is its recordHash."""
        from electra.charging.service import load_session

        now = int(self.clock() * 1000)
        tariff = self.tariffs.get(row.charger_id)
        # A session pays the dynamic price published before it started, never a later one.
        dynamic = self.price_in_force(row.charger_id, row.started_at_ms) if self.price_in_force else None
        if dynamic is not None:
            tariff = dynamic
        auth = self.authorizations.for_session(row.id)
        status, reason, amount = PENDING, None, 0
        breakdown: dict[str, object] = {"tariff": tariff.__dict__, "dynamic_price": dynamic is not None}
        state = load_session(self.engine, row.charger_id, row.transaction_uid)
        try:
            if state is None:
                raise InvalidInput(f"session {row.id} has no meter readings")
            usage = Usage.of(state)
            cost = tariff.cost(usage)
            amount = cost.total
            breakdown |= {"usage": usage.__dict__, "cost": dict(cost.lines()), "total": str(cost.total)}
        except InvalidInput as exc:
            status, reason = MANUAL, exc.one_line()[:255]
            if row.meter_data == "failed":  # say which rule the signed meter data broke
                reason = f"meter data unverified: {row.meter_data_detail or 'see the readings'}"[:255]
        asset_address = self.assets.get(tariff.asset, "")
        if status == PENDING:
            if auth is None:
                status, reason = MANUAL, "no charge authorization (a driver's token, or none was bound)"
            elif auth.authorization.asset.lower() != asset_address.lower():
                status, reason = MANUAL, f"authorized in {auth.authorization.asset}, priced in {tariff.asset}"
            elif amount > auth.authorization.max_amount:
                breakdown["capped_from"] = str(amount)
                amount = auth.authorization.max_amount
                reason = "capped at the authorized maximum"
        leaf = RecordLeaf(
            session_id=row.id,
            charger_token_id=self.token_id_of(row.charger_id),
            vehicle_id=row.vehicle_id or 0,
            started_at_ms=row.started_at_ms,
            stopped_at_ms=row.stopped_at_ms or row.started_at_ms,
            meter_start_wh=row.meter_start_wh or 0,
            meter_stop_wh=row.meter_stop_wh or 0,
            energy_wh=row.billable_wh or 0,
            asset=asset_address or "0x" + "00" * 20,
            amount=amount,
        )
        breakdown["record"] = [str(v) for v in leaf.values()]
        settlement = SettlementRecord(
            session_id=row.id,
            authorization_id=auth.id if auth is not None else None,
            vehicle_id=row.vehicle_id,
            charger_id=row.charger_id,
            asset=tariff.asset,
            amount=str(amount),
            breakdown=json.dumps(breakdown, sort_keys=True, default=str),
            record_hash="0x" + leaf.leaf().hex(),
            status=status,
            reason=reason,
            created_at_ms=now,
            updated_at_ms=now,
        )
        return settlement, leaf
