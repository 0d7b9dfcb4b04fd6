"""The API's queries over the store. Routes call these; no route builds a query of its own."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from electra.store.models import (
    ChargerState,
    ConnectorState,
    IdTokenRecord,
    MeterValueRecord,
    SessionRecord,
    SettlementRecord,
)


@dataclass(frozen=True)
class SessionPage:
    rows: list[SessionRecord]
    settlements: dict[int, str]  # session id -> settlement status
    next_cursor: int | None


class SessionRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, session_id: int) -> SessionRecord | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.get(SessionRecord, session_id)

    def settlement_status(self, session_id: int) -> str | None:
        with Session(self.engine) as s:
            return s.scalar(select(SettlementRecord.status).where(SettlementRecord.session_id == session_id))

    def page(
        self,
        limit: int,
        before: int | None = None,
        vehicles: Iterable[int] | None = None,
        chargers: Iterable[str] | None = None,
        status: str | None = None,
        charger_id: str | None = None,
        vehicle_id: int | None = None,
    ) -> SessionPage:
        """Newest first. ``vehicles`` and ``chargers`` (both None: every session) are what the
        caller may see: sessions of those vehicles or at those chargers."""
        q = select(SessionRecord)
        if vehicles is not None or chargers is not None:
            v, c = list(vehicles or ()), list(chargers or ())
            if not v and not c:
                return SessionPage([], {}, None)
            q = q.where(or_(SessionRecord.vehicle_id.in_(v), SessionRecord.charger_id.in_(c)))
        if status is not None:
            q = q.where(SessionRecord.status == status)
        if charger_id is not None:
            q = q.where(SessionRecord.charger_id == charger_id)
        if vehicle_id is not None:
            q = q.where(SessionRecord.vehicle_id == vehicle_id)
        if before is not None:
            q = q.where(SessionRecord.id < before)
        with Session(self.engine, expire_on_commit=False) as s:
            rows = list(s.scalars(q.order_by(SessionRecord.id.desc()).limit(limit + 1)))
            ids = [r.id for r in rows[:limit]]
            settled = dict(
                s.execute(
                    select(SettlementRecord.session_id, SettlementRecord.status).where(
                        SettlementRecord.session_id.in_(ids)
                    )
                ).all()
            )
        page = rows[:limit]
        return SessionPage(page, settled, page[-1].id if len(rows) > limit else None)

    def last_readings(self, session_id: int, n: int = 2) -> list[MeterValueRecord]:
        """The session's newest ``n`` register readings, newest first."""
        with Session(self.engine, expire_on_commit=False) as s:
            return list(
                s.scalars(
                    select(MeterValueRecord)
                    .where(MeterValueRecord.session_id == session_id)
                    .order_by(MeterValueRecord.timestamp_ms.desc(), MeterValueRecord.id.desc())
                    .limit(n)
                )
            )

    def started_since(self, charger_id: str, id_token: str, since_ms: int) -> SessionRecord | None:
        """The session a remote start opened: at this charger, with this token, from ``since_ms``."""
        with Session(self.engine, expire_on_commit=False) as s:
            return s.scalar(
                select(SessionRecord)
                .where(
                    SessionRecord.charger_id == charger_id,
                    SessionRecord.id_token == id_token,
                    SessionRecord.updated_at_ms >= since_ms,
                )
                .order_by(SessionRecord.id.desc())
                .limit(1)
            )

    def in_window(self, charger_id: str, start_ms: int, end_ms: int) -> list[SessionRecord]:
        """The charger's sessions that overlap [start_ms, end_ms)."""
        with Session(self.engine, expire_on_commit=False) as s:
            return list(
                s.scalars(
                    select(SessionRecord).where(
                        SessionRecord.charger_id == charger_id,
                        SessionRecord.started_at_ms < end_ms,
                        or_(SessionRecord.stopped_at_ms.is_(None), SessionRecord.stopped_at_ms > start_ms),
                    )
                )
            )


class ChargerRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def state(self, charger_id: str) -> ChargerState | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.get(ChargerState, charger_id)

    def connectors(self, charger_id: str) -> list[ConnectorState]:
        with Session(self.engine, expire_on_commit=False) as s:
            return list(
                s.scalars(
                    select(ConnectorState)
                    .where(ConnectorState.charger_id == charger_id)
                    .order_by(ConnectorState.connector_id)
                )
            )

    def vehicle_token(self, vehicle_id: int) -> str | None:
        """An accepted id token of the vehicle, the oldest first (a remote start sends it)."""
        with Session(self.engine) as s:
            return s.scalar(
                select(IdTokenRecord.id_token)
                .where(IdTokenRecord.vehicle_id == vehicle_id, IdTokenRecord.status == "Accepted")
                .order_by(IdTokenRecord.created_at_ms, IdTokenRecord.id_token)
                .limit(1)
            )

    def token_vehicle(self, id_token: str) -> int | None:
        with Session(self.engine) as s:
            return s.scalar(select(IdTokenRecord.vehicle_id).where(IdTokenRecord.id_token == id_token))


@dataclass(frozen=True)
class ChargerEarnings:
    charger_id: str
    asset: str
    sessions: int
    gross: int  # what vehicles paid, base units
    fee: int  # the protocol's commission
    net: int  # what the holder was credited


class EarningsRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def by_charger(self, payee: str, chargers: Iterable[str] | None = None) -> list[ChargerEarnings]:
        """Settled sessions paid to ``payee``, summed per charger and asset (amounts are decimal
        text in the store, so the sums are done here, exactly)."""
        q = select(
            SettlementRecord.charger_id, SettlementRecord.asset, SettlementRecord.amount, SettlementRecord.fee
        ).where(func.lower(SettlementRecord.payee) == payee.lower(), SettlementRecord.status == "settled")
        if chargers is not None:
            q = q.where(SettlementRecord.charger_id.in_(list(chargers)))
        sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        with Session(self.engine) as s:
            for charger_id, asset, amount, fee in s.execute(q):
                acc = sums[(charger_id, asset)]
                acc[0] += 1
                acc[1] += int(amount)
                acc[2] += int(fee or 0)
        return [
            ChargerEarnings(cid, asset, n, gross, fee, gross - fee)
            for (cid, asset), (n, gross, fee) in sorted(sums.items())
        ]


@dataclass(frozen=True)
class Utilization:
    charger_id: str
    start_ms: int
    end_ms: int
    connectors: int
    sessions: int
    energy_wh: int
    occupied_ms: int

    @property
    def permille(self) -> int:
        """Occupied connector-time over available connector-time."""
        span = (self.end_ms - self.start_ms) * self.connectors
        return min(1000, self.occupied_ms * 1000 // span) if span > 0 else 0


def utilization(engine: Engine, charger_id: str, start_ms: int, end_ms: int) -> Utilization:
    """How busy a charger was in [start_ms, end_ms): sessions clipped to the window; a running
    session counts until ``end_ms``."""
    rows = SessionRepository(engine).in_window(charger_id, start_ms, end_ms)
    connectors = {c.connector_id for c in ChargerRepository(engine).connectors(charger_id) if c.connector_id > 0}
    connectors |= {r.connector_id for r in rows if r.connector_id > 0}
    occupied = sum(max(0, min(r.stopped_at_ms or end_ms, end_ms) - max(r.started_at_ms, start_ms)) for r in rows)
    energy = sum(r.energy_wh or 0 for r in rows if r.status == "completed")
    return Utilization(charger_id, start_ms, end_ms, max(1, len(connectors)), len(rows), energy, occupied)


def has_tariff(engine: Engine, charger_id: str) -> bool:
    from electra.store.models import TariffRecord

    with Session(engine) as s:
        return s.get(TariffRecord, charger_id) is not None


def wallet_history(
    engine: Engine, vehicle_id: int | None = None, owner: str | None = None, limit: int = 50, before: int | None = None
) -> Any:
    """A vehicle's or an owner's wallet history, newest first (WalletService.history, which reads
    the store only: no chain is needed for it)."""
    from electra.payments.wallet import WalletService

    return WalletService(engine, None).history(vehicle_id=vehicle_id, owner=owner, limit=limit, before=before)  # type: ignore[arg-type]
