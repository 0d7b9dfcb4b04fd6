"""The intelligence's side of the store: chargers' histories read from sessions, connector states
and the OCPP message log; maintenance tickets; published price quotes. Queries live here, the
rules in the pure modules (forecast, pricing, maintenance)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from electra.domain.tariff import Tariff
from electra.errors import InvalidInput
from electra.intelligence.maintenance import Ticket, TicketStatus
from electra.intelligence.pricing import PriceQuote
from electra.intelligence.signals import HOUR_MS, ChargerHistory, SessionOutcome, StatusEvent
from electra.store.models import (
    ChargerState,
    ConnectorState,
    MaintenanceTicketRecord,
    OcppMessage,
    PriceQuoteRecord,
    SessionRecord,
    SiteChargerRecord,
    TariffRecord,
)

LOG = logging.getLogger("electra.intelligence")


# -- histories ------------------------------------------------------------------------------------


def status_of_message(payload: str, received_at_ms: int) -> StatusEvent | None:
    """The StatusNotification in a logged CALL (``[2, id, "StatusNotification", {...}]``), 1.6 or
    2.0.1; None if it is not one or cannot be read."""
    try:
        frame = json.loads(payload)
    except ValueError:
        return None
    if not (isinstance(frame, list) and len(frame) == 4 and isinstance(frame[3], dict)):
        return None
    body = frame[3]
    if "connectorStatus" in body:  # 2.0.1: evse and connector, no error code
        status = str(body.get("connectorStatus", ""))
        code = "Faulted" if status == "Faulted" else "NoError"
        connector = body.get("evseId", 0)
    else:
        status, code, connector = (
            str(body.get("status", "")),
            str(body.get("errorCode", "NoError")),
            body.get("connectorId", 0),
        )
    if not isinstance(connector, int) or not status:
        return None
    return StatusEvent(received_at_ms, connector, status, code)


def known_charger(engine: Engine, charger_id: str) -> bool:
    """Whether the store has anything of this charger: a boot, a session or a tariff."""
    with engine.connect() as conn:
        for q in (
            select(ChargerState.charger_id).where(ChargerState.charger_id == charger_id),
            select(SessionRecord.id).where(SessionRecord.charger_id == charger_id).limit(1),
            select(TariffRecord.charger_id).where(TariffRecord.charger_id == charger_id),
        ):
            if conn.execute(q).first() is not None:
                return True
    return False


def known_charger_ids(engine: Engine) -> list[str]:
    """Every charger that booted or charged here."""
    with engine.connect() as conn:
        booted = set(conn.scalars(select(ChargerState.charger_id)))
        charged = set(conn.scalars(select(SessionRecord.charger_id).distinct()))
    return sorted(booted | charged)


def load_histories(
    engine: Engine,
    since_ms: int,
    until_ms: int,
    charger_ids: Sequence[str] | None = None,
    sites: Mapping[str, str] | None = None,
) -> dict[str, ChargerHistory]:
    """Each charger's sessions started in ``[since_ms, until_ms)`` (an active one runs to
    ``until_ms``), the StatusNotifications it sent then, and its connectors' states now. Without
    ``charger_ids``: every charger the store knows. A charger's site is the one the operator put it
    in (``site_chargers``, electra site add-charger), else ``sites[id]``, else its own id."""
    sites = sites or {}
    sessions: dict[str, list[SessionOutcome]] = {}
    statuses: dict[str, list[StatusEvent]] = {}
    current: dict[str, dict[int, str]] = {}
    with engine.connect() as conn:

        def only(column: Any) -> Any:
            return column.in_(list(charger_ids)) if charger_ids is not None else true()

        for row in conn.execute(
            select(
                SessionRecord.charger_id,
                SessionRecord.connector_id,
                SessionRecord.started_at_ms,
                SessionRecord.stopped_at_ms,
                SessionRecord.energy_wh,
                SessionRecord.stop_reason,
                SessionRecord.flags,
                SessionRecord.status,
            )
            .where(
                only(SessionRecord.charger_id),
                SessionRecord.started_at_ms >= since_ms,
                SessionRecord.started_at_ms < until_ms,
            )
            .order_by(SessionRecord.started_at_ms)
        ):
            active = row.status != "completed" or row.stopped_at_ms is None
            sessions.setdefault(row.charger_id, []).append(
                SessionOutcome(
                    connector_id=row.connector_id,
                    started_at_ms=row.started_at_ms,
                    stopped_at_ms=until_ms if active else min(row.stopped_at_ms, until_ms),
                    # an active session has not failed yet: count it as delivering
                    energy_wh=1 if active else int(row.energy_wh or 0),
                    stop_reason="" if active else (row.stop_reason or ""),
                    flags=frozenset(f for f in (row.flags or "").split(",") if f),
                )
            )
        for row in conn.execute(
            select(OcppMessage.charger_id, OcppMessage.received_at_ms, OcppMessage.payload)
            .where(
                only(OcppMessage.charger_id),
                OcppMessage.action == "StatusNotification",
                OcppMessage.received_at_ms >= since_ms,
                OcppMessage.received_at_ms < until_ms,
            )
            .order_by(OcppMessage.received_at_ms, OcppMessage.id)
        ):
            event = status_of_message(row.payload, row.received_at_ms)
            if event is not None:
                statuses.setdefault(row.charger_id, []).append(event)
        for row in conn.execute(
            select(ConnectorState.charger_id, ConnectorState.connector_id, ConnectorState.status).where(
                only(ConnectorState.charger_id), ConnectorState.connector_id > 0
            )
        ):
            current.setdefault(row.charger_id, {})[row.connector_id] = row.status
        booted = set(conn.scalars(select(ChargerState.charger_id).where(only(ChargerState.charger_id))))
        declared = {
            cid: site
            for cid, site in conn.execute(
                select(SiteChargerRecord.charger_id, SiteChargerRecord.site_id).where(
                    only(SiteChargerRecord.charger_id)
                )
            )
        }
    ids = set(charger_ids) if charger_ids is not None else booted | set(sessions) | set(statuses) | set(current)
    out = {}
    for cid in sorted(ids):
        conns = current.get(cid, {})
        seen = [s.connector_id for s in sessions.get(cid, [])] + list(conns)
        connectors = max([1, *seen])
        out[cid] = ChargerHistory(
            charger_id=cid,
            site=declared.get(cid) or sites.get(cid, cid),
            connectors=connectors,
            sessions=tuple(sessions.get(cid, [])),
            statuses=tuple(statuses.get(cid, [])),
            current_status=tuple(conns[k] for k in sorted(conns)),
        )
    return out


def write_history(engine: Engine, histories: Iterable[ChargerHistory], ocpp_version: str = "1.6") -> int:
    """Writes simulated histories into the store as the central system would have: a charger row,
    completed sessions, the StatusNotification CALLs in the message log and the connectors' last
    states. For demos and tests; returns how many sessions it wrote."""
    written = 0
    with Session(engine) as s, s.begin():
        conn = s.connection()
        for h in histories:
            first = min([x.started_at_ms for x in h.sessions] + [e.at_ms for e in h.statuses], default=0)
            last = max([x.stopped_at_ms for x in h.sessions] + [e.at_ms for e in h.statuses], default=0)
            s.merge(
                ChargerState(
                    charger_id=h.charger_id,
                    ocpp_version=ocpp_version,
                    vendor="Electra",
                    model="SimCharger",
                    firmware=None,
                    registration="Accepted",
                    booted_at_ms=first,
                    last_seen_ms=last,
                )
            )
            rows = [
                {
                    "charger_id": h.charger_id,
                    "connector_id": x.connector_id,
                    "transaction_uid": f"hist-{x.connector_id}-{x.started_at_ms}",
                    "ocpp_version": ocpp_version,
                    "id_token": "HISTORY",
                    "token_status": "Accepted",
                    "vehicle_id": None,
                    "status": "completed",
                    "started_at_ms": x.started_at_ms,
                    "meter_start_wh": 0,
                    "stopped_at_ms": x.stopped_at_ms,
                    "meter_stop_wh": x.energy_wh,
                    "stop_reason": x.stop_reason or "EVDisconnected",
                    "energy_wh": x.energy_wh,
                    "billable_wh": None if x.flags else x.energy_wh,
                    "flags": ",".join(sorted(x.flags)),
                    "offline": False,
                    "updated_at_ms": x.stopped_at_ms,
                }
                for x in h.sessions
            ]
            if rows:
                conn.execute(insert(SessionRecord), rows)
            messages = [
                {
                    "charger_id": h.charger_id,
                    "message_id": f"hist-{k}",
                    "action": "StatusNotification",
                    "received_at_ms": e.at_ms,
                    "payload": json.dumps(
                        [
                            2,
                            f"hist-{k}",
                            "StatusNotification",
                            {
                                "connectorId": e.connector_id,
                                "errorCode": e.error_code,
                                "status": e.status,
                                "timestamp": _iso(e.at_ms),
                            },
                        ]
                    ),
                }
                for k, e in enumerate(h.statuses)
            ]
            if messages:
                conn.execute(insert(OcppMessage), messages)
            for k, status in enumerate(h.current_status, start=1):
                s.merge(
                    ConnectorState(
                        charger_id=h.charger_id, connector_id=k, status=status, error_code=None, updated_at_ms=last
                    )
                )
            written += len(rows)
    return written


def _iso(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


# -- price quotes ---------------------------------------------------------------------------------


class QuoteBook:
    """Published quotes, one per charger and hour, never rewritten."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, charger_id: str, valid_from_ms: int) -> tuple[PriceQuote, int] | None:
        """The quote of that hour and when it was published."""
        with Session(self.engine) as s:
            row = s.get(PriceQuoteRecord, (charger_id, valid_from_ms))
            if row is None:
                return None
            return PriceQuote.from_json(json.loads(row.quote)), row.created_at_ms

    def publish(self, quote: PriceQuote, at_ms: int) -> PriceQuote:
        """Stores the quote unless one of that hour exists; returns the one that holds."""
        row = PriceQuoteRecord(
            charger_id=quote.charger_id,
            valid_from_ms=quote.valid_from_ms,
            valid_until_ms=quote.valid_until_ms,
            asset=quote.price.asset,
            energy_price_per_wh=str(quote.price.energy_price_per_wh),
            multiplier_bps=quote.multiplier_bps,
            quote=json.dumps(quote.to_json(), sort_keys=True),
            created_at_ms=at_ms,
        )
        try:
            with Session(self.engine) as s, s.begin():
                s.add(row)
        except IntegrityError:
            existing = self.get(quote.charger_id, quote.valid_from_ms)
            if existing is None:
                raise
            LOG.info("%s: quote of %s published first elsewhere", quote.charger_id, quote.valid_from_ms)
            return existing[0]
        return quote

    def in_force(self, charger_id: str, started_at_ms: int) -> PriceQuote | None:
        """The quote a session that started at ``started_at_ms`` pays: that hour's, if it had been
        published by then. A quote published later never applies to a session already running."""
        found = self.get(charger_id, started_at_ms - started_at_ms % HOUR_MS)
        if found is None or found[1] > started_at_ms:
            return None
        return found[0]


def price_in_force(engine: Engine) -> Callable[[str, int], Tariff | None]:
    """For the biller: the dynamic tariff a session that started then pays, or None (no quote was
    published for that hour before it started: the owner's tariff applies)."""
    book = QuoteBook(engine)

    def tariff(charger_id: str, started_at_ms: int) -> Tariff | None:
        q = book.in_force(charger_id, started_at_ms)
        return None if q is None else q.price

    return tariff


# -- maintenance tickets --------------------------------------------------------------------------


def _ticket(row: MaintenanceTicketRecord) -> Ticket:
    return Ticket(
        id=row.id,
        charger_id=row.charger_id,
        status=TicketStatus(row.status),
        risk_permille=row.risk_permille,
        reasons=tuple(json.loads(row.reasons)),
        opened_at_ms=row.opened_at_ms,
        updated_at_ms=row.updated_at_ms,
        scheduled_for_ms=row.scheduled_for_ms,
        closed_at_ms=row.closed_at_ms,
        resolution=row.resolution,
    )


class TicketBook:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def raise_for(
        self, charger_id: str, risk_permille: int, reasons: Sequence[str], now_ms: int
    ) -> tuple[Ticket, bool]:
        """Opens a ticket for the charger, or (if it has one that is not closed) records the new
        score on it. Returns the ticket and whether it is new."""
        live = self.live(charger_id)
        if live is not None:
            self._rescore(live.id, risk_permille, now_ms)
            return self.get(live.id), False
        row = MaintenanceTicketRecord(
            charger_id=charger_id,
            status=TicketStatus.OPEN.value,
            risk_permille=risk_permille,
            reasons=json.dumps(list(reasons)),
            last_risk_permille=risk_permille,
            last_scored_at_ms=now_ms,
            opened_at_ms=now_ms,
            updated_at_ms=now_ms,
        )
        try:
            with Session(self.engine) as s, s.begin():
                s.add(row)
                s.flush()
                new_id = row.id
        except IntegrityError:  # another scan opened it first: the unique index allows one
            live = self.live(charger_id)
            if live is None:
                raise
            return live, False
        return self.get(new_id), True

    def rescore(self, charger_id: str, risk_permille: int, now_ms: int) -> Ticket | None:
        """Records a score on the charger's live ticket, if it has one."""
        live = self.live(charger_id)
        if live is None:
            return None
        self._rescore(live.id, risk_permille, now_ms)
        return self.get(live.id)

    def _rescore(self, ticket_id: int, risk_permille: int, now_ms: int) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(MaintenanceTicketRecord)
                .where(MaintenanceTicketRecord.id == ticket_id)
                .values(last_risk_permille=risk_permille, last_scored_at_ms=now_ms)
            )

    def get(self, ticket_id: int) -> Ticket:
        with Session(self.engine) as s:
            row = s.get(MaintenanceTicketRecord, ticket_id)
            if row is None:
                raise InvalidInput(f"no maintenance ticket {ticket_id}", "see `electra maintenance list`")
            return _ticket(row)

    def live(self, charger_id: str) -> Ticket | None:
        """The charger's ticket that is not closed, if any."""
        with Session(self.engine) as s:
            row = s.scalar(
                select(MaintenanceTicketRecord).where(
                    MaintenanceTicketRecord.charger_id == charger_id,
                    MaintenanceTicketRecord.status != TicketStatus.CLOSED.value,
                )
            )
            return None if row is None else _ticket(row)

    def list(
        self, status: Sequence[TicketStatus] | None = None, charger_id: str | None = None, limit: int = 500
    ) -> list[Ticket]:
        """Tickets, the riskiest live ones first, then the most recently closed."""
        q = select(MaintenanceTicketRecord)
        if status:
            q = q.where(or_(*(MaintenanceTicketRecord.status == st.value for st in status)))
        if charger_id is not None:
            q = q.where(MaintenanceTicketRecord.charger_id == charger_id)
        q = q.order_by(
            (MaintenanceTicketRecord.status == TicketStatus.CLOSED.value).asc(),
            MaintenanceTicketRecord.last_risk_permille.desc(),
            MaintenanceTicketRecord.updated_at_ms.desc(),
            MaintenanceTicketRecord.id.desc(),
        ).limit(limit)
        with Session(self.engine) as s:
            return [_ticket(r) for r in s.scalars(q)]

    def schedule(self, ticket_id: int, for_ms: int, now_ms: int) -> Ticket:
        return self._move(ticket_id, lambda t: t.schedule(for_ms, now_ms))

    def close(self, ticket_id: int, resolution: str, now_ms: int) -> Ticket:
        return self._move(ticket_id, lambda t: t.close(resolution, now_ms))

    def _move(self, ticket_id: int, step: Any) -> Ticket:
        """Applies a lifecycle step, only if nobody moved the ticket since it was read."""
        before = self.get(ticket_id)
        after: Ticket = step(before)
        with Session(self.engine) as s, s.begin():
            done = s.execute(
                update(MaintenanceTicketRecord)
                .where(
                    MaintenanceTicketRecord.id == ticket_id,
                    MaintenanceTicketRecord.status == before.status.value,
                    MaintenanceTicketRecord.updated_at_ms == before.updated_at_ms,
                )
                .values(
                    status=after.status.value,
                    scheduled_for_ms=after.scheduled_for_ms,
                    closed_at_ms=after.closed_at_ms,
                    resolution=after.resolution,
                    updated_at_ms=after.updated_at_ms,
                )
            )
            if done.rowcount != 1:
                raise InvalidInput(f"ticket {ticket_id} changed meanwhile", "look at it again and retry")
        return after
