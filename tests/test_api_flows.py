"""What people do through the REST API, end to end on a real uvicorn, a real anvil and (for
sessions) the real central system with a simulated charger: a driver funds a wallet by the
instructions it is given and by a fiat top-up, sets an alert, starts and stops a session through
remote commands and watches it live over Server-Sent Events; a host reads its views."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from electra.api.app import create_app
from electra.chain.bindings import Electra
from electra.ocpp.commands import Commands
from electra.payments.events import EventBus
from electra.payments.providers import SandboxProvider
from electra.sim import ChargerIdentity, SimClock, make_charger
from electra.store.db import make_engine, migrate
from tests.apiworld import DRIVER_KEY, HOST_KEY, bearer, make_world, register_charger, serve, serve_here, sign_in
from tests.test_meter_data_flow import csms
from tests.test_sim_charger import running, until

EUSD = 10**6


def _send(e: Electra, sender: str, call: dict[str, Any]) -> None:
    """What a wallet does with a call it is given (anvil's dev accounts are unlocked)."""
    tx = e.client.w3.eth.send_transaction({"from": sender, "to": call["to"], "data": call["data"]})
    assert e.client.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1


def test_a_driver_funds_the_wallet_tops_up_and_is_alerted(electra: Electra, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    migrate(engine)
    w = make_world(electra, engine, "WALLET")
    provider = SandboxProvider(b"s" * 32)
    bus = EventBus()
    app = create_app(engine, lambda: electra, providers=[provider], bus=bus)
    electra.stablecoin.mint(DRIVER_KEY.address, 5 * EUSD)
    with serve(app) as url:
        h = bearer(sign_in(url, DRIVER_KEY))
        base = f"{url}/api/v1/vehicles/{w.vehicle_id}/wallet"
        r = httpx.get(
            f"{base}/deposit", params={"amount": str(5 * EUSD), "funder": DRIVER_KEY.address}, headers=h, timeout=30
        )
        assert r.status_code == 200, r.text
        plan = r.json()
        assert plan["asset"]["symbol"] == "EUSD" and plan["permit"]["primaryType"] == "Permit"
        for call in plan["calls"]:
            _send(electra, DRIVER_KEY.address, call)
        balances = {b["asset"]: b for b in httpx.get(base, headers=h, timeout=30).json()["balances"]}
        assert balances["EUSD"]["balance"] == str(5 * EUSD)
        r = httpx.put(f"{base}/alerts/EUSD", json={"below": str(10 * EUSD)}, headers=h, timeout=30)
        assert r.status_code == 200 and r.json()["firing"] is True
        events: list[str] = []
        with httpx.stream(
            "GET", f"{url}/api/v1/events", params={"topics": "wallet.topup,balance.recovered"}, headers=h, timeout=30
        ) as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            r = httpx.post(f"{base}/topup", json={"amount_cents": 1000, "currency": "EUR"}, headers=h, timeout=30)
            assert r.status_code == 201, r.text
            intent = r.json()
            assert intent["credits"] == str(10 * EUSD) and intent["checkout_url"].startswith("sandbox://")
            from electra.payments.providers import CheckoutIntent

            paid = provider.complete(
                CheckoutIntent("sandbox", intent["provider_ref"], w.vehicle_id, 1000, "EUR", "", 0)
            )
            hook = httpx.post(
                f"{url}/api/v1/webhooks/sandbox", content=paid.body, headers=dict(paid.headers), timeout=60
            )
            assert hook.status_code == 200 and hook.json()["status"] == "credited"
            for line in lines:
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
                if len(events) == 2:
                    break
        assert sorted(events) == ["balance.recovered", "wallet.topup"]
        balances = {b["asset"]: b for b in httpx.get(base, headers=h, timeout=30).json()["balances"]}
        assert balances["EUSD"]["balance"] == str(15 * EUSD) and balances["EUSD"]["alert_firing"] is False
        history = httpx.get(f"{base}/history", params={"limit": 1}, headers=h, timeout=30).json()
        assert [e["kind"] for e in history["items"]] == ["topup"] and history["next"] is None
        replay = httpx.post(f"{url}/api/v1/webhooks/sandbox", content=paid.body, headers=dict(paid.headers), timeout=60)
        assert replay.json()["status"] == "duplicate"
        assert httpx.delete(f"{base}/alerts/EUSD", headers=h, timeout=30).status_code == 204
        assert httpx.delete(f"{base}/alerts/EUSD", headers=h, timeout=30).json()["code"] == "alert-unknown"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_driver_starts_watches_and_stops_a_session_through_the_api(
    electra: Electra, tmp_path: Path, version: str
) -> None:
    from electra.ocpp.gateway import CsmsStore

    cid = f"CP-API-LIVE-{version}"
    clock = SimClock(speed=30)

    async def body() -> None:
        store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db", clock=clock.now)
        w = make_world(electra, store.engine, f"LIVE{version}")
        register_charger(electra, cid, HOST_KEY)
        store.tokens.issue("CAR-API-1", vehicle_id=w.vehicle_id)
        bus = EventBus()
        store.sessions.publish = bus.publish
        async with csms(electra, store, clock) as system:
            from eth_utils import keccak

            device = keccak(b"electra-test-api-device:" + cid.encode())
            password = system.store.credentials.rotate(cid)
            charger = make_charger(
                version,
                ChargerIdentity(cid, device),
                f"ws://127.0.0.1:{system.port}",
                clock,
                password=password,
                response_timeout_s=3,
            )
            app = create_app(store.engine, lambda: electra, commands=Commands(system), system=lambda: system, bus=bus)
            async with running(charger), serve_here(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
                token = await asyncio.to_thread(sign_in, url, DRIVER_KEY)
                stranger = await asyncio.to_thread(sign_in, url, w.stranger)
                seen: dict[str, list[dict[str, Any]]] = {"driver": [], "stranger": []}

                async def watch(who: str, t: str) -> None:
                    topics = {"topics": "session.started,session.progress,session.stopped"}
                    async with http.stream("GET", "/api/v1/events", params=topics, headers=bearer(t)) as r:
                        assert r.status_code == 200
                        event = None
                        async for line in r.aiter_lines():
                            if line.startswith("event: "):
                                event = line.removeprefix("event: ")
                            elif line.startswith("data: ") and event is not None:
                                seen[who].append({"event": event, **json.loads(line.removeprefix("data: "))})

                watchers = [
                    asyncio.create_task(watch("driver", token)),
                    asyncio.create_task(watch("stranger", stranger)),
                ]
                await until(lambda: bus.subscribers == 2)
                charger.plug_in(1)
                r = await http.post("/api/v1/sessions", json={"charger_id": cid, "wait_s": 10}, headers=bearer(token))
                assert r.status_code == 201, r.text
                session = r.json()["session"]
                assert session["vehicle_id"] == w.vehicle_id and session["status"] == "active"
                sid = session["id"]
                await until(lambda: any(e["event"] == "session.progress" for e in seen["driver"]), 20)
                p = (await http.get(f"/api/v1/sessions/{sid}/progress", headers=bearer(token))).json()
                assert p["status"] == "active" and p["energy_wh"] >= 0 and p["asset"] == "EUSD"
                r = await http.post(f"/api/v1/sessions/{sid}/stop", headers=bearer(stranger))
                assert r.status_code == 403
                r = await http.post(f"/api/v1/sessions/{sid}/stop", headers=bearer(token))
                assert r.status_code == 202 and r.json()["charger_answer"]["status"] == "Accepted"
                await until(lambda: any(e["event"] == "session.stopped" for e in seen["driver"]), 20)
                done = (await http.get(f"/api/v1/sessions/{sid}", headers=bearer(token))).json()
                assert done["status"] == "completed" and done["stop_reason"] == "Remote"
                again = await http.post(f"/api/v1/sessions/{sid}/stop", headers=bearer(token))
                assert again.status_code == 409 and again.json()["code"] == "session-not-active"
                await asyncio.sleep(0.3)
                for task in watchers:
                    task.cancel()
                await asyncio.gather(*watchers, return_exceptions=True)
                kinds = [e["event"] for e in seen["driver"] if e["session_id"] == sid]
                assert kinds[0] == "session.started" and kinds[-1] == "session.stopped" and "session.progress" in kinds
                assert seen["stranger"] == []  # a wallet sees only its own vehicles' and chargers' sessions

    asyncio.run(body())


def test_host_views_earnings_utilization_staking_tickets_and_tariff(electra: Electra, tmp_path: Path) -> None:
    from electra.intelligence.store import TicketBook
    from tests.apiworld import add_session

    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    migrate(engine)
    w = make_world(electra, engine, "HOSTV")
    add_session(engine, w.charger_id, w.vehicle_id, status="active", uid="RUNNING-1")
    TicketBook(engine).raise_for(w.charger_id, 900, ["faults"], 1)
    with serve(create_app(engine, lambda: electra)) as url:
        h = bearer(sign_in(url, HOST_KEY))
        u = httpx.get(
            f"{url}/api/v1/host/chargers/{w.charger_id}/utilization", params={"days": 1}, headers=h, timeout=30
        ).json()
        assert u["sessions"] == 2 and u["energy_wh"] == 11_000 and 0 < u["utilization_permille"] <= 1000
        st = httpx.get(f"{url}/api/v1/host/chargers/{w.charger_id}/staking", headers=h, timeout=30).json()
        assert st["holder"] == HOST_KEY.address and st["tier"] == 0 and st["tiers"]
        tickets = httpx.get(f"{url}/api/v1/host/chargers/{w.charger_id}/tickets", headers=h, timeout=30).json()
        assert tickets["count"] == 1 and tickets["items"][0]["charger_id"] == w.charger_id
        earned = httpx.get(f"{url}/api/v1/host/earnings", headers=h, timeout=30).json()
        assert earned["owner"] == HOST_KEY.address and {a["asset"] for a in earned["withdrawable"]} == {"EUSD", "ELC"}
        r = httpx.put(
            f"{url}/api/v1/stations/{w.charger_id}/tariff", json={"energy_price_per_wh": "350"}, headers=h, timeout=30
        )
        assert r.status_code == 200 and r.json()["default"] is False
        t = httpx.get(f"{url}/api/v1/stations/{w.charger_id}/tariff", timeout=30).json()
        assert t["energy_price_per_wh"] == "350"
        r = httpx.put(
            f"{url}/api/v1/stations/{w.charger_id}/tariff",
            json={"energy_price_per_wh": "999999999"},
            headers=h,
            timeout=30,
        )
        assert r.status_code == 400 and r.json()["code"] == "tariff-out-of-bounds"
        s = httpx.get(f"{url}/api/v1/stations/{w.charger_id}", timeout=30).json()
        assert s["owner"] == HOST_KEY.address and s["lease"]["public"] is True
        assert httpx.get(f"{url}/api/v1/stations/CP-NOBODY", timeout=30).json()["code"] == "charger-unknown"
        lease = f"{url}/api/v1/stations/{w.charger_id}/lease"
        body = {"public": False, "windows": ["mon-fri 07:00-19:00"], "allowed_vehicles": [w.vehicle_id]}
        r = httpx.put(lease, json=body, headers=h, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "charger_id": w.charger_id,
            "public": False,
            "windows": ["Mon-Fri 07:00-19:00"],
            "allowed_vehicles": [w.vehicle_id],
        }
        shown = httpx.get(f"{url}/api/v1/stations/{w.charger_id}", timeout=30).json()["lease"]
        assert shown == {"public": False, "windows": ["Mon-Fri 07:00-19:00"]}  # the vehicles are the host's to see
        assert httpx.get(lease, headers=h, timeout=30).json()["allowed_vehicles"] == [w.vehicle_id]
        bad = httpx.put(lease, json={"public": True, "windows": ["Mon 19:00-07:00"]}, headers=h, timeout=30)
        assert bad.status_code == 400 and bad.json()["code"] == "lease-invalid"
        driver = bearer(sign_in(url, DRIVER_KEY))
        assert httpx.put(lease, json={"public": True}, headers=driver, timeout=30).status_code == 403
        assert httpx.get(lease, headers=h, timeout=30).json()["windows"] == ["Mon-Fri 07:00-19:00"]  # unchanged


def test_a_hosts_page_of_chargers_is_newest_first_and_counts_only_what_it_holds(
    electra: Electra, tmp_path: Path
) -> None:
    from electra.chain.keys import dev_account

    cpo = dev_account(7)
    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    migrate(engine)
    ids = [f"CP-CPO-{n}" for n in range(5)]
    tokens = [register_charger(electra, cid, cpo) for cid in ids]
    registry = electra.stations.contract.functions
    electra.client.transact(registry.transferFrom(cpo.address, HOST_KEY.address, tokens[1]), sender=cpo)
    with serve(create_app(engine, lambda: electra)) as url:
        h = bearer(sign_in(url, cpo))

        def page(offset: int) -> dict[str, Any]:
            r = httpx.get(
                f"{url}/api/v1/web/hosts/{cpo.address}", params={"offset": offset, "limit": 2}, headers=h, timeout=30
            )
            assert r.status_code == 200, r.text
            return dict(r.json())

        pages = [page(0), page(2), page(4)]
        assert [p["page"] for p in pages] == [{"offset": o, "limit": 2, "total": 4} for o in (0, 2, 4)]
        shown = [[c["charger_id"] for c in p["chargers"]] for p in pages]
        assert shown == [["CP-CPO-4", "CP-CPO-3"], ["CP-CPO-2", "CP-CPO-0"], []]  # CP-CPO-1 was sold
        assert all(c["owner"] == cpo.address for p in pages for c in p["chargers"])
        too_big = httpx.get(f"{url}/api/v1/web/hosts/{cpo.address}", params={"limit": 201}, headers=h, timeout=30)
        assert too_big.status_code == 422 and too_big.json()["code"] == "invalid-request"
        other = bearer(sign_in(url, HOST_KEY))
        assert httpx.get(f"{url}/api/v1/web/hosts/{cpo.address}", headers=other, timeout=30).status_code == 403


def test_a_fleets_vehicles_come_a_page_at_a_time_in_registration_order(electra: Electra, tmp_path: Path) -> None:
    from electra.chain.keys import dev_account
    from tests.apiworld import register_vehicle

    fleet = dev_account(8)
    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    migrate(engine)
    ids = [register_vehicle(electra, f"WVWZZZFLT{n:08d}", fleet.address) for n in range(3)]
    with serve(create_app(engine, lambda: electra)) as url:
        h = bearer(sign_in(url, fleet))
        pages = [
            httpx.get(
                f"{url}/api/v1/web/drivers/{fleet.address}", params={"offset": o, "limit": 2}, headers=h, timeout=30
            ).json()
            for o in (0, 2)
        ]
        assert [p["page"] for p in pages] == [{"offset": o, "limit": 2, "total": 3} for o in (0, 2)]
        assert [[v["vehicle_id"] for v in p["vehicles"]] for p in pages] == [ids[:2], ids[2:]]
        assert all(set(v["balances"]) == {"EUSD", "ELC"} for p in pages for v in p["vehicles"])
        other = bearer(sign_in(url, DRIVER_KEY))
        assert httpx.get(f"{url}/api/v1/web/drivers/{fleet.address}", headers=other, timeout=30).status_code == 403


def _messages(lines: Any) -> Any:
    """Server-Sent Events messages from a line iterator: dicts of their fields (comments dropped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def test_an_event_stream_resumes_after_a_reconnect_with_what_it_missed(electra: Electra, tmp_path: Path) -> None:
    """Last-Event-ID: a driver that reconnects gets what it missed (its own vehicle's events, not
    another's) before the live ones; an id from another run, or too old, gets a reset first."""
    from electra.payments.events import DEPOSITED

    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    migrate(engine)
    w = make_world(electra, engine, "REPLAY")
    bus = EventBus(retain=5)
    app = create_app(engine, lambda: electra, bus=bus)
    mine = lambda n: bus.publish(DEPOSITED, {"vehicle_id": w.vehicle_id, "n": n})  # noqa: E731
    theirs = lambda n: bus.publish(DEPOSITED, {"vehicle_id": w.vehicle_id + 1_000, "n": n})  # noqa: E731
    with serve(app) as url:
        h = bearer(sign_in(url, DRIVER_KEY))
        events = f"{url}/api/v1/events"
        mine(0)  # before the first connection: not replayed to it
        with httpx.stream("GET", events, params={"topics": DEPOSITED}, headers=h, timeout=30) as s:
            got = _messages(s.iter_lines())
            opening = next(got)
            assert opening == {"retry": "3000", "id": f"{bus.epoch}-1"}  # where the stream starts
            mine(1)
            first = next(got)
            assert json.loads(first["data"])["n"] == 1 and first["id"] == f"{bus.epoch}-2"
        # Disconnected: two of its own events and one of another vehicle's go by.
        mine(2), theirs(3), mine(4)
        with httpx.stream(
            "GET", events, params={"topics": DEPOSITED}, headers={**h, "Last-Event-ID": first["id"]}, timeout=30
        ) as s:
            got = _messages(s.iter_lines())
            assert next(got)["id"] == f"{bus.epoch}-5"
            replayed = [json.loads(next(got)["data"])["n"] for _ in range(2)]
            mine(6)
            live = next(got)
        assert replayed == [2, 4] and json.loads(live["data"])["n"] == 6  # none repeated, none lost
        for n in range(7, 13):
            theirs(n)  # the bus keeps 5: the driver's last id is now older than what is kept
        for stale in (live["id"], f"{EventBus().epoch}-3"):
            with httpx.stream(
                "GET", events, params={"topics": DEPOSITED, "last_event_id": stale}, headers=h, timeout=30
            ) as s:
                got = _messages(s.iter_lines())
                next(got)
                reset = next(got)
                assert reset["event"] == "reset" and "re-read" in json.loads(reset["data"])["fix"], stale
