"""`electra pricing show` on the real dev chain (the DAO's bounds are read from PaymentHub) and
`electra maintenance scan|list|schedule|close` on the store, --json and one-line errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from electra.chain.bindings import Electra
from electra.config import Settings
from electra.intelligence.history import FleetHistory, simulate_fleet
from electra.intelligence.signals import DAY_MS, HOUR_MS, ChargerHistory, SessionOutcome, StatusEvent
from electra.intelligence.store import write_history
from electra.store.db import make_engine, migrate
from tests.test_cli import ok_json, one_line_error, run

WEEK_MS = 7 * DAY_MS


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def _store(tmp_path: Path, extra: list[ChargerHistory] | None = None) -> tuple[str, FleetHistory]:
    """Three weeks of a small simulated fleet up to now (the CLI runs on the wall clock)."""
    url = f"sqlite:///{tmp_path}/intel.db"
    engine = make_engine(url)
    migrate(engine)
    now = _now_ms()
    history = simulate_fleet(31, sites=2, chargers_per_site=2, weeks=3, start_ms=now - now % HOUR_MS - 3 * WEEK_MS)
    write_history(engine, history.histories() + (extra or []))
    engine.dispose()
    return url, history


def _degrading(now: int) -> ChargerHistory:
    sessions = [
        SessionOutcome(1, now - d * DAY_MS, now - d * DAY_MS + HOUR_MS, 9_000, "EVDisconnected")
        for d in range(20, 0, -1)
    ]
    sessions += [SessionOutcome(1, now - h * HOUR_MS, now - h * HOUR_MS + 60_000, 0, "PowerLoss") for h in (30, 20, 6)]
    faults = []
    for h in range(66, 0, -6):
        faults += [
            StatusEvent(now - h * HOUR_MS, 1, "Faulted", "GroundFailure"),
            StatusEvent(now - h * HOUR_MS + 600_000, 1, "Available"),
        ]
    return ChargerHistory(
        "CP-BAD", "s", 1, tuple(sorted(sessions, key=lambda x: x.started_at_ms)), tuple(faults), ("Available",)
    )


def test_pricing_show_reads_the_daos_bounds_and_explains(
    electra: Electra, chain_settings: Settings, tmp_path: Path
) -> None:
    url, history = _store(tmp_path)
    cid = history.chargers[0].charger_id
    data = ok_json(run(chain_settings, "pricing", "show", cid, "--json", ELECTRA_DB_URL=url))
    assert data["charger_id"] == cid and data["published_now"] is True
    assert data["valid_from_ms"] % HOUR_MS == 0 and data["valid_until_ms"] - data["valid_from_ms"] == HOUR_MS
    assert data["valid_from_ms"] <= _now_ms() < data["valid_until_ms"] + HOUR_MS
    assert data["forecast"]["method"] == "model" and len(data["forecast"]["next_24h_permille"]) == 24
    # nothing published on this chain yet: the platform's defaults, and PaymentHub's ceiling is the default one
    assert data["bounds"]["source"] == "default"
    assert (data["bounds"]["floor_bps"], data["bounds"]["cap_bps"]) == (8000, 15000)
    assert data["bounds"]["tariff_ceiling"]["max_energy_price_per_wh"] == "2000"
    assert data["base"]["energy_price_per_wh"] == "400"
    assert 8000 <= data["multiplier_bps"] <= 15000
    assert any("bps" in w for w in data["why"])
    again = ok_json(run(chain_settings, "pricing", "show", cid, "--json", ELECTRA_DB_URL=url))
    assert again["published_now"] is False and again["price"] == data["price"]
    human = run(chain_settings, "pricing", "show", cid, ELECTRA_DB_URL=url)
    assert human.exit_code == 0 and "multiplier" in human.stdout
    err = one_line_error(run(chain_settings, "pricing", "show", "CP-NEVER", ELECTRA_DB_URL=url))
    assert "unknown charger CP-NEVER" in err


def test_maintenance_tickets_from_the_cli(chain_settings: Settings, tmp_path: Path) -> None:
    url, history = _store(tmp_path, [_degrading(_now_ms())])
    scan = ok_json(run(chain_settings, "maintenance", "scan", "--json", ELECTRA_DB_URL=url))
    assert scan["scored"] == len(history.chargers) + 1 and scan["threshold_permille"] == 750
    opened = {t["charger_id"] for t in scan["opened"]}
    assert "CP-BAD" in opened
    assert opened == {s["charger_id"] for s in scan["scores"] if s["risk_permille"] >= 750}
    listed = ok_json(run(chain_settings, "maintenance", "list", "--json", ELECTRA_DB_URL=url))
    assert listed["count"] == len(opened)
    (ticket,) = ok_json(
        run(chain_settings, "maintenance", "list", "--charger", "CP-BAD", "--json", ELECTRA_DB_URL=url)
    )["items"]
    assert ticket["status"] == "open" and any("hardware" in r for r in ticket["reasons"])
    tid = str(ticket["id"])
    booked = ok_json(
        run(chain_settings, "maintenance", "schedule", tid, "--at", "2099-01-02T09:30Z", "--json", ELECTRA_DB_URL=url)
    )
    assert booked["status"] == "scheduled"
    assert booked["scheduled_for_ms"] == int(dt.datetime(2099, 1, 2, 9, 30, tzinfo=dt.UTC).timestamp() * 1000)
    closed = ok_json(
        run(chain_settings, "maintenance", "close", tid, "--resolution", "replaced relay", "--json", ELECTRA_DB_URL=url)
    )
    assert (closed["status"], closed["resolution"]) == ("closed", "replaced relay")
    assert (
        ok_json(run(chain_settings, "maintenance", "list", "--status", "closed", "--json", ELECTRA_DB_URL=url))[
            "items"
        ][0]["id"]
        == ticket["id"]
    )
    err = one_line_error(run(chain_settings, "maintenance", "close", tid, "--resolution", "again", ELECTRA_DB_URL=url))
    assert "already closed" in err
    err = one_line_error(run(chain_settings, "maintenance", "schedule", tid, "--at", "soon", ELECTRA_DB_URL=url))
    assert "ISO 8601" in err
    err = one_line_error(run(chain_settings, "maintenance", "list", "--status", "maybe", ELECTRA_DB_URL=url))
    assert "ticket status" in err
    human = run(chain_settings, "maintenance", "list", "--status", "all", ELECTRA_DB_URL=url)
    assert human.exit_code == 0 and "maintenance tickets" in human.stdout
