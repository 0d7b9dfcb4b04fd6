"""The session log fed by the platform, on SQLite and PostgreSQL: the session service logs each
session's lifecycle in its charger's chain (once, whatever the charger retransmits), and the biller
logs every completed session's record, paid on-chain or not, in the transaction of its bill."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from electra.charging.service import SessionService
from electra.charging.tokens import TokenRegistry
from electra.domain.session_log import EventType
from electra.ocpp.meter import RegisterReading
from electra.payments.authorizations import AuthorizationBook
from electra.payments.billing import MANUAL, Biller
from electra.payments.tariffs import TariffBook
from electra.store.models import SettlementRecord
from electra.store.session_log import SessionLog
from electra.store.writer import GroupCommitWriter

T0 = 1_795_000_000_000
EUSD = "0x" + "e5" * 20


def run(engine: Engine, body: Callable[[SessionService], Awaitable[Any]], **options: bool) -> Any:
    async def main() -> Any:
        writer = GroupCommitWriter(engine)
        await writer.start()
        try:
            return await body(SessionService(engine, writer, TokenRegistry(engine), **options))
        finally:
            await writer.stop()

    return asyncio.run(main())


def reading(minute: int, wh: int) -> RegisterReading:
    return RegisterReading(T0 + minute * 60_000, wh)


def test_the_service_logs_each_session_once_in_its_chargers_chain(store_engine: Engine) -> None:
    """With meter values logged too (log_meter_values=True)."""

    async def charge(svc: SessionService) -> tuple[str, str]:
        a = await svc.start("CP-1", "1.6", 1, "CARD-A", T0, 10_000)
        await svc.start("CP-1", "1.6", 1, "CARD-A", T0, 10_000)  # retransmitted: nothing new
        b = await svc.start("CP-2", "2.0.1", 1, "CARD-B", T0 + 1, 500, uid="tx-b\u00e9")
        # Many sessions' readings at once, as the gateway sees them: one log append per commit.
        await asyncio.gather(
            svc.record("CP-1", a.uid, [reading(5, 11_000)]),
            svc.record("CP-2", b.uid, [reading(5, 900), reading(6, 1_000)]),
            svc.record("CP-1", a.uid, [reading(3, 10_500)]),
        )
        assert await svc.record("CP-1", a.uid, [reading(5, 11_000)]) == 0  # the same reading again
        await svc.stop("CP-1", a.uid, T0 + 10 * 60_000, 12_000, "EVDisconnected")
        return a.uid, b.uid

    a_uid, b_uid = run(store_engine, charge, log_meter_values=True)

    async def after_restart(svc: SessionService) -> None:  # nothing in memory; the charger resends
        await svc.stop("CP-1", a_uid, T0 + 10 * 60_000, 12_000, "EVDisconnected")
        await svc.record("CP-2", b_uid, [reading(6, 1_000), reading(7, 1_100)])
        await svc.stop("CP-2", b_uid, T0 + 8 * 60_000, 1_200, "Local")

    run(store_engine, after_restart, log_meter_values=True)
    log = SessionLog(store_engine)
    one = log.events("CP-1")
    assert [(e.type, e.content()["data"]) for e in one] == [
        (
            EventType.STARTED,
            {
                "connector_id": 1,
                "meter_start_wh": 10_000,
                "token_status": "Invalid",
                "transaction_uid": a_uid,
            },
        ),
        (EventType.METER_VALUE, {"register_wh": 11_000}),  # in the order they arrived
        (EventType.METER_VALUE, {"register_wh": 10_500}),
        (
            EventType.STOPPED,
            {
                "billable_wh": 2_000,
                "energy_wh": 2_000,
                "flags": "",
                "meter_stop_wh": 12_000,
                "reason": "EVDisconnected",
            },
        ),
    ]
    two = log.events("CP-2")
    assert [e.type for e in two] == [EventType.STARTED] + [EventType.METER_VALUE] * 3 + [EventType.STOPPED]
    assert two[0].content()["data"]["transaction_uid"] == "tx-b?"  # not printable ASCII: made loggable
    assert [e.content()["at_ms"] for e in two[1:4]] == [T0 + 5 * 60_000, T0 + 6 * 60_000, T0 + 7 * 60_000]
    assert log.verify_chains() == []


def test_by_default_starts_and_stops_are_logged_and_can_be_switched_off(store_engine: Engine) -> None:
    async def body(svc: SessionService) -> None:
        charger = f"CP-{svc.log is not None:d}"
        s = await svc.start(charger, "1.6", 1, "T", T0, 0)
        await svc.record(charger, s.uid, [reading(1, 100)])
        await svc.stop(charger, s.uid, T0 + 120_000, 200, "Local")

    run(store_engine, body)
    run(store_engine, body, log_events=False)
    log = SessionLog(store_engine)
    assert [e.type for e in log.events("CP-1")] == [EventType.STARTED, EventType.STOPPED]
    assert log.events("CP-0") == []


def biller(engine: Engine) -> Biller:
    authorizations = AuthorizationBook(engine, None, lambda vehicle_id: ("", ""))  # type: ignore[arg-type]
    return Biller(engine, TariffBook(engine), authorizations, {"EUSD": EUSD, "ELC": EUSD}, lambda charger_id: 7)


def test_every_completed_session_gets_a_record_in_the_transaction_of_its_bill(store_engine: Engine) -> None:
    TokenRegistry(store_engine).issue("DRIVER-1", owner="0x" + "ab" * 20)

    async def sessions(svc: SessionService) -> list[int]:
        ids = []
        for n, (token, readings) in enumerate(
            [
                ("DRIVER-1", [reading(5, 2_000)]),  # a driver's token: billed outside PaymentHub
                ("NOBODY", [reading(5, 2_000)]),  # an unknown token
                ("DRIVER-1", [reading(5, 2_000), reading(6, 1_500)]),  # a meter running backwards: flagged
                ("DRIVER-1", [reading(5, 2_000)]),  # billed by "another worker" below
            ]
        ):
            s = await svc.start(f"CP-{n % 2}", "1.6", 1, token, T0 + n, 1_000)
            await svc.record(f"CP-{n % 2}", s.uid, readings)
            await svc.stop(f"CP-{n % 2}", s.uid, T0 + 10 * 60_000, 3_000, "Local")
            ids.append(s.db_id)
        return ids

    ids = run(store_engine, sessions)
    b = biller(store_engine)
    real_bill = b.bill

    def raced_bill(row: Any) -> Any:
        bill, record = real_bill(row)
        if row.id == ids[3]:  # another worker commits this session's bill first
            with Session(store_engine) as s, s.begin():
                s.add(real_bill(row)[0])
        return bill, record

    b.bill = raced_bill  # type: ignore[method-assign]
    assert b.sweep() == 3
    log = SessionLog(store_engine)
    assert log.record_by_session(ids[3]) is None  # its bill failed here: its record went with it
    records = log.records()
    assert [(r.seq, r.record.session_id) for r in records] == [(1, ids[0]), (2, ids[1]), (3, ids[2])]
    with Session(store_engine) as s:
        bills = {x.session_id: x for x in s.scalars(select(SettlementRecord))}
    for r in records:
        assert bills[r.record.session_id].record_hash == "0x" + r.leaf.hex()  # PaymentHub's recordHash
        assert bills[r.record.session_id].status == MANUAL  # none of them is paid on-chain
        assert r.charger_id == ("CP-0" if r.record.session_id in (ids[0], ids[2]) else "CP-1")
    assert b.sweep() == 0 and len(log.records()) == 3
    recorded = [e for e in log.events("CP-0") if e.type == EventType.RECORDED]
    assert [e.content()["data"]["seq"] for e in recorded] == [1, 3]
    assert log.audit_local() == []
