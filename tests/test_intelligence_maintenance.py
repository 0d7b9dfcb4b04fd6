"""Predictive maintenance: features from faults, failed sessions and meter anomalies; the ticket
lifecycle (pure, then in the store on SQLite and PostgreSQL); scans that open tickets; the
reliability score discovery reads; and the risk model on a fleet it never saw."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from electra.errors import InvalidInput
from electra.intelligence.history import DEFAULT_START_MS, simulate_fleet
from electra.intelligence.maintenance import (
    FEATURES,
    RISK_THRESHOLD_PERMILLE,
    ChargerSignals,
    Ticket,
    TicketStatus,
    confusion,
    default_risk_model,
    evidence,
    failures_caught,
    maintenance_features,
    reliability_of,
    reliability_permille,
    samples,
)
from electra.intelligence.service import MaintenanceService
from electra.intelligence.signals import DAY_MS, HOUR_MS, ChargerHistory, SessionOutcome, StatusEvent
from electra.intelligence.store import (
    TicketBook,
    known_charger,
    known_charger_ids,
    load_histories,
    status_of_message,
    write_history,
)
from electra.store.models import ConnectorState, MaintenanceTicketRecord, OcppMessage

NOW = DEFAULT_START_MS + 40 * DAY_MS
MIN = 60_000


def ok(at_ms: int, connector: int = 1) -> SessionOutcome:
    return SessionOutcome(connector, at_ms, at_ms + HOUR_MS, 10_000, "EVDisconnected")


def degrading(charger_id: str = "CP-BAD") -> ChargerHistory:
    """A charger that was fine for weeks and now throws hardware faults and fails sessions."""
    sessions = [ok(NOW - d * DAY_MS) for d in range(28, 3, -1)]
    sessions += [
        SessionOutcome(1, NOW - 2 * DAY_MS, NOW - 2 * DAY_MS + 5 * MIN, 0, "PowerLoss"),
        SessionOutcome(1, NOW - DAY_MS, NOW - DAY_MS + 20 * MIN, 300, "EVDisconnected", frozenset({"meter_backwards"})),
        ok(NOW - 10 * HOUR_MS),
    ]
    statuses = []
    for k, code in enumerate(
        ["GroundFailure", "GroundFailure", "OverCurrentFailure", "GroundFailure", "PowerMeterFailure"]
    ):
        at = NOW - (60 - 10 * k) * HOUR_MS
        statuses += [StatusEvent(at, 1, "Faulted", code), StatusEvent(at + 15 * MIN, 1, "Available")]
    statuses.append(StatusEvent(NOW - 20 * DAY_MS, 1, "Faulted", "ReaderFailure"))
    statuses.append(StatusEvent(NOW - 20 * DAY_MS + 2 * MIN, 1, "Available"))
    statuses.sort(key=lambda e: e.at_ms)
    return ChargerHistory(
        charger_id,
        "site",
        2,
        tuple(sorted(sessions, key=lambda x: x.started_at_ms)),
        tuple(statuses),
        ("Available", "Available"),
    )


def healthy(charger_id: str = "CP-OK") -> ChargerHistory:
    sessions = tuple(ok(NOW - d * HOUR_MS * 7, 1 + d % 2) for d in range(90, 0, -1))
    return ChargerHistory(charger_id, "site", 2, sessions, (), ("Available", "Charging"))


def test_features_count_faults_failed_sessions_and_meter_anomalies() -> None:
    f = maintenance_features(degrading(), NOW)
    assert set(f) == set(FEATURES)
    # faults at 60, 50, 40, 30 and 20 hours ago; one soft fault 20 days ago
    assert (f["faults_1d"], f["faults_3d"], f["faults_7d"]) == (1, 5, 5)
    assert (f["hardware_faults_3d"], f["hardware_faults_7d"], f["meter_faults_7d"], f["soft_faults_7d"]) == (4, 4, 1, 0)
    assert f["error_codes_7d"] == 3
    assert f["faulted_minutes_7d"] == pytest.approx(75)
    assert f["days_since_fault"] == pytest.approx(20 / 24)
    assert f["fault_rate_3d_vs_21d"] == pytest.approx((5 / 3 + 0.1) / (1 / 21 + 0.1))
    # sessions of the last 7 days: 4 fine ones (7..4 days ago), PowerLoss, meter_backwards, one now
    assert (f["sessions_7d"], f["failed_sessions_7d"], f["failed_sessions_3d"]) == (7, 2, 2)
    assert f["failed_share_7d"] == pytest.approx(2 / 7)
    assert f["failed_share_7d_vs_21d"] == pytest.approx(2 / 7)
    assert f["meter_anomalies_7d"] == 1
    lines = evidence(f)
    assert "4 hardware and 1 meter fault(s) in 7 days" in lines[0]
    assert any("2 of 7 sessions failed" in x for x in lines)
    assert any("meter anomalies" in x for x in lines)


def test_features_see_only_the_past() -> None:
    h = degrading()
    before = maintenance_features(h, NOW - 3 * DAY_MS)
    assert before["faults_7d"] == 0 and before["failed_sessions_7d"] == 0
    assert evidence(before) == ["no faults, failed sessions or meter anomalies in 7 days"]
    quiet = maintenance_features(healthy(), NOW)
    assert quiet["faults_7d"] == 0 and quiet["days_since_fault"] == 28.0 and quiet["sessions_7d"] == 24


def test_a_charger_left_faulted_counts_its_downtime_up_to_now() -> None:
    h = ChargerHistory(
        "CP-DOWN", "s", 1, (), (StatusEvent(NOW - 2 * HOUR_MS, 1, "Faulted", "InternalError"),), ("Faulted",)
    )
    assert ChargerSignals(h).features_at(NOW)[FEATURES.index("faulted_minutes_7d")] == pytest.approx(120)


def _ticket() -> Ticket:
    return Ticket(1, "CP-1", TicketStatus.OPEN, 910, ("faults",), opened_at_ms=NOW, updated_at_ms=NOW)


def test_ticket_lifecycle_open_scheduled_closed() -> None:
    t = _ticket()
    booked = t.schedule(NOW + DAY_MS, NOW + 1)
    assert (booked.status, booked.scheduled_for_ms, booked.updated_at_ms) == (
        TicketStatus.SCHEDULED,
        NOW + DAY_MS,
        NOW + 1,
    )
    moved = booked.schedule(NOW + 2 * DAY_MS, NOW + 2)
    assert moved.scheduled_for_ms == NOW + 2 * DAY_MS
    done = moved.close("  replaced the contactor ", NOW + 3)
    assert (done.status, done.closed_at_ms, done.resolution) == (TicketStatus.CLOSED, NOW + 3, "replaced the contactor")
    assert done.to_json()["status"] == "closed" and done.to_json()["scheduled_for_ms"] == NOW + 2 * DAY_MS
    false_alarm = t.close("false alarm: a loose cable", NOW + 5)
    assert false_alarm.status is TicketStatus.CLOSED and false_alarm.scheduled_for_ms is None


def test_ticket_lifecycle_refusals() -> None:
    closed = _ticket().close("fixed", NOW)
    with pytest.raises(InvalidInput, match="closed"):
        closed.schedule(NOW + DAY_MS, NOW)
    with pytest.raises(InvalidInput, match="already closed"):
        closed.close("again", NOW)
    with pytest.raises(InvalidInput, match="resolution"):
        _ticket().close("  ", NOW)
    with pytest.raises(InvalidInput, match="past"):
        _ticket().schedule(NOW - 2 * HOUR_MS, NOW)


def test_ticket_book_lifecycle_in_the_store(store_engine: Engine) -> None:
    book = TicketBook(store_engine)
    first, new = book.raise_for("CP-1", 820, ["4 hardware faults"], NOW)
    assert new and first.status is TicketStatus.OPEN and first.reasons == ("4 hardware faults",)
    again, new = book.raise_for("CP-1", 940, ["5 hardware faults"], NOW + HOUR_MS)
    assert not new and again.id == first.id and again.risk_permille == 820  # the score it was opened with
    other, _ = book.raise_for("CP-2", 760, ["meter"], NOW)
    assert [t.charger_id for t in book.list()] == ["CP-1", "CP-2"]  # riskiest (latest score 940) first

    booked = book.schedule(first.id, NOW + DAY_MS, NOW + 2 * HOUR_MS)
    assert book.get(first.id) == booked and booked.status is TicketStatus.SCHEDULED
    assert book.raise_for("CP-1", 990, ["worse"], NOW + 3 * HOUR_MS)[0].status is TicketStatus.SCHEDULED
    closed = book.close(first.id, "replaced the ground-fault relay", NOW + DAY_MS)
    assert book.get(first.id) == closed and closed.status is TicketStatus.CLOSED
    with pytest.raises(InvalidInput):
        book.schedule(first.id, NOW + 2 * DAY_MS, NOW + DAY_MS)
    assert book.live("CP-1") is None

    reopened, new = book.raise_for("CP-1", 800, ["faults again"], NOW + 5 * DAY_MS)
    assert new and reopened.id not in (first.id, other.id)
    assert [t.id for t in book.list([TicketStatus.CLOSED])] == [first.id]
    assert {t.id for t in book.list([TicketStatus.OPEN, TicketStatus.SCHEDULED])} == {reopened.id, other.id}
    assert [t.id for t in book.list(None, "CP-1")] == [reopened.id, first.id]  # live first, then closed
    with pytest.raises(InvalidInput, match="no maintenance ticket"):
        book.get(999_999)
    # the store itself refuses a second live ticket for a charger
    with pytest.raises(IntegrityError), Session(store_engine) as s, s.begin():
        s.add(
            MaintenanceTicketRecord(
                charger_id="CP-1",
                status="open",
                risk_permille=1,
                reasons="[]",
                last_risk_permille=1,
                last_scored_at_ms=NOW,
                opened_at_ms=NOW,
                updated_at_ms=NOW,
            )
        )


def test_a_stale_ticket_change_is_refused(store_engine: Engine) -> None:
    book = TicketBook(store_engine)
    t, _ = book.raise_for("CP-1", 820, ["x"], NOW)
    stale = book.get(t.id)
    book.close(t.id, "fixed", NOW + 1)
    # someone read the ticket before it was closed: their step must not overwrite the close
    book.get = lambda _id: stale  # type: ignore[method-assign]
    with pytest.raises(InvalidInput, match="changed meanwhile"):
        book.schedule(t.id, NOW + DAY_MS, NOW + 2)


def test_histories_round_trip_through_the_store(store_engine: Engine) -> None:
    bad, good = degrading(), healthy()
    assert write_history(store_engine, [bad, good]) == len(bad.sessions) + len(good.sessions)
    with store_engine.begin() as conn:  # a 2.0.1 charger's Faulted StatusNotification, and noise
        conn.execute(
            insert(OcppMessage),
            [
                {
                    "charger_id": "CP-201",
                    "message_id": "m1",
                    "action": "StatusNotification",
                    "received_at_ms": NOW - HOUR_MS,
                    "payload": json.dumps(
                        [
                            2,
                            "m1",
                            "StatusNotification",
                            {"timestamp": "x", "connectorStatus": "Faulted", "evseId": 1, "connectorId": 1},
                        ]
                    ),
                },
                {
                    "charger_id": "CP-201",
                    "message_id": "m2",
                    "action": "StatusNotification",
                    "received_at_ms": NOW - 1,
                    "payload": "not json",
                },
                {
                    "charger_id": "CP-201",
                    "message_id": "m3",
                    "action": "Heartbeat",
                    "received_at_ms": NOW - 1,
                    "payload": '[2,"m3","Heartbeat",{}]',
                },
            ],
        )
        conn.execute(
            insert(ConnectorState),
            [
                {
                    "charger_id": "CP-201",
                    "connector_id": 1,
                    "status": "Faulted",
                    "error_code": "Faulted",
                    "updated_at_ms": NOW,
                }
            ],
        )
    got = load_histories(store_engine, NOW - 28 * DAY_MS, NOW + 1)
    assert set(got) == {"CP-BAD", "CP-OK", "CP-201"}
    assert got["CP-BAD"].sessions == tuple(s for s in bad.sessions if s.started_at_ms >= NOW - 28 * DAY_MS)
    assert got["CP-BAD"].statuses == tuple(e for e in bad.statuses if e.at_ms >= NOW - 28 * DAY_MS)
    assert got["CP-OK"].current_status == ("Available", "Charging") and got["CP-OK"].connectors == 2
    assert got["CP-201"].statuses == (StatusEvent(NOW - HOUR_MS, 1, "Faulted", "Faulted"),)
    assert got["CP-201"].current_status == ("Faulted",)
    only = load_histories(store_engine, NOW - DAY_MS, NOW + 1, ["CP-OK"], sites={"CP-OK": "lot-7"})
    assert list(only) == ["CP-OK"] and only["CP-OK"].site == "lot-7"
    # a site the operator declared (for load balancing) is the charger's site for the forecast too
    from electra.intelligence.load_balancing import Site, SiteBook, SiteCharger

    sites = SiteBook(store_engine)
    sites.put_site(Site("depot", "Depot", limit_w=50_000))
    sites.put_charger(SiteCharger("CP-OK", "depot"))
    declared = load_histories(store_engine, NOW - DAY_MS, NOW + 1, sites={"CP-OK": "lot-7", "CP-BAD": "lot-7"})
    assert (declared["CP-OK"].site, declared["CP-BAD"].site, declared["CP-201"].site) == ("depot", "lot-7", "CP-201")
    assert known_charger(store_engine, "CP-OK") and not known_charger(store_engine, "CP-NOPE")
    assert known_charger_ids(store_engine) == ["CP-BAD", "CP-OK"]


def test_status_of_message_reads_both_versions() -> None:
    v16 = json.dumps(
        [2, "1", "StatusNotification", {"connectorId": 2, "errorCode": "GroundFailure", "status": "Faulted"}]
    )
    assert status_of_message(v16, 5) == StatusEvent(5, 2, "Faulted", "GroundFailure")
    v201 = json.dumps([2, "1", "StatusNotification", {"connectorStatus": "Available", "evseId": 1, "connectorId": 1}])
    assert status_of_message(v201, 5) == StatusEvent(5, 1, "Available", "NoError")
    assert status_of_message('[2, "1", "StatusNotification"]', 5) is None
    assert status_of_message(json.dumps([2, "1", "StatusNotification", {"connectorId": "x", "status": "A"}]), 5) is None


def test_scan_opens_a_ticket_for_the_degrading_charger_only(store_engine: Engine) -> None:
    write_history(store_engine, [degrading(), healthy()])
    service = MaintenanceService(store_engine, clock=lambda: NOW / 1000)
    report = service.scan()
    risk = {s.charger_id: s.risk_permille for s in report.scores}
    assert risk["CP-BAD"] >= RISK_THRESHOLD_PERMILLE > risk["CP-OK"]
    assert [t.charger_id for t in report.opened] == ["CP-BAD"]
    (ticket,) = TicketBook(store_engine).list()
    assert ticket.charger_id == "CP-BAD" and ticket.risk_permille == risk["CP-BAD"]
    assert any("hardware" in r for r in ticket.reasons)
    again = service.scan()  # a second scan updates the open ticket, opens none
    assert again.opened == () and [t.id for t in again.rescored] == [ticket.id]
    assert report.to_json()["opened"][0]["charger_id"] == "CP-BAD"


def test_a_charger_down_now_scores_1000(store_engine: Engine) -> None:
    down = ChargerHistory(
        "CP-DOWN",
        "s",
        1,
        (ok(NOW - DAY_MS),),
        (StatusEvent(NOW - HOUR_MS, 1, "Faulted", "InternalError"),),
        ("Faulted",),
    )
    write_history(store_engine, [down])
    (score,) = MaintenanceService(store_engine, clock=lambda: NOW / 1000).score()
    assert score.risk_permille == 1000 and score.evidence[0].startswith("every connector")


def test_reliability_from_sessions_connectors_and_risk(store_engine: Engine) -> None:
    sessions = [ok(NOW - d * DAY_MS) for d in range(1, 9)]
    sessions += [SessionOutcome(1, NOW - 3 * HOUR_MS, NOW - 2 * HOUR_MS, 0, "PowerLoss")]
    sessions += [SessionOutcome(1, NOW - 2 * HOUR_MS, NOW - HOUR_MS, 100, "Local", frozenset({"meter_backwards"}))]
    sessions += [ok(NOW - 40 * DAY_MS)]  # older than the 30 days reliability looks at
    h = ChargerHistory(
        "CP-R", "s", 2, tuple(sorted(sessions, key=lambda x: x.started_at_ms)), (), ("Available", "Faulted")
    )
    assert reliability_of(h, NOW) == 800 * 500 // 1000  # 8 of 10 sessions fine, 1 of 2 connectors up
    assert reliability_of(h, NOW, risk_permille=250) == 400 * 750 // 1000
    write_history(store_engine, [h, healthy()])
    clock = lambda: NOW / 1000  # noqa: E731
    assert reliability_permille(store_engine, ["CP-R", "CP-OK", "CP-NEW"], clock=clock) == {
        "CP-R": 400,
        "CP-OK": 1000,
        "CP-NEW": 1000,  # nothing known yet: no reason to rank it down
    }
    with_risk = reliability_permille(store_engine, ["CP-R", "CP-OK"], clock=clock, model=default_risk_model())
    assert with_risk["CP-R"] <= 400 and 900 <= with_risk["CP-OK"] <= 1000


def test_risk_model_finds_degrading_chargers_it_never_saw() -> None:
    fleet = simulate_fleet(404, sites=6, chargers_per_site=5, weeks=8, prefix="HOLDOUT")
    data = samples(fleet)
    risk = default_risk_model().risk_permille(data.x)
    at = confusion(risk, data.y, RISK_THRESHOLD_PERMILLE)
    assert at.tp + at.fn == int(data.y.sum()) > 10
    assert at.precision > 0.4 and at.recall > 0.25
    everyone = confusion(risk, data.y, 0)
    assert everyone.recall == 1.0 and everyone.precision < at.precision
    failures, caught, leads = failures_caught(fleet, data, risk, RISK_THRESHOLD_PERMILLE)
    assert 0 < caught <= failures and all(0 < d <= 3 for d in leads)


def test_migration_0007_goes_down_to_0006_and_up_again(store_engine: Engine) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from electra.store.db import MIGRATIONS
    from electra.store.models import Base

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))

    def to(revision: str, up: bool) -> set[str]:
        with store_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            (command.upgrade if up else command.downgrade)(cfg, revision)
        return set(inspect(store_engine).get_table_names())

    assert {"maintenance_tickets", "price_quotes"} <= to("head", True)
    with store_engine.connect() as conn:  # 0007 builds exactly what the models describe
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    down = to("0006", False)
    assert not {"maintenance_tickets", "price_quotes"} & down and {"sites", "site_chargers"} <= down
    assert {"maintenance_tickets", "price_quotes"} <= to("head", True)
    TicketBook(store_engine).raise_for("CP-1", 800, ["after the round trip"], NOW)
    assert len(TicketBook(store_engine).list()) == 1
