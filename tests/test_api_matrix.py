"""Who may call what: every route of the app against every role, on a real uvicorn and anvil.

The matrix is checked against the app's own routes: a route without an entry here, or an entry
without a route, fails the test. ``ok`` means the caller got past authentication and
authorization (any answer but 401, 403 or 500); 401 and 403 are the refusals expected."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from electra.api.app import create_app
from electra.api.ratelimit import Rate, RateLimits
from electra.chain.bindings import Electra
from electra.store.db import make_engine, migrate
from tests.apiworld import World, bearer, make_world, serve, sign_in

ROLES = ("anonymous", "stranger", "driver", "host", "operator", "admin")
OK, NO_AUTH, FORBIDDEN = "ok", 401, 403


def only(*allowed: str, signed_in: bool = True) -> dict[str, Any]:
    """``allowed`` roles get through; other signed-in ones 403; anonymous 401 (or ok if public)."""
    out: dict[str, Any] = {}
    for role in ROLES:
        if role in allowed:
            out[role] = OK
        elif role == "anonymous":
            out[role] = NO_AUTH if signed_in else OK
        else:
            out[role] = FORBIDDEN
    return out


EVERYONE = dict.fromkeys(ROLES, OK)
SIGNED_IN = only("stranger", "driver", "host", "operator", "admin")
ADDRESSES = only("stranger", "driver", "host")
STAFF = only("operator", "admin")
VEHICLE = only("driver", "operator", "admin")
CHARGER = only("host", "operator", "admin")
SESSION = only("driver", "host", "operator", "admin")

# (method, path) -> expected per role, and how to call it: query, body (per role), stream
MATRIX: dict[tuple[str, str], dict[str, Any]] = {
    # The web app's pages and routes (electra.api.web). What is someone's own (a driver's vehicles,
    # sessions and history, a host's earnings) takes the same guards as the API's routes; the
    # transactions and actions the pages prepare are authorized by the wallet's own signature.
    ("GET", "/"): EVERYONE,
    ("GET", "/driver"): EVERYONE,
    ("GET", "/host"): EVERYONE,
    ("GET", "/dao"): EVERYONE,
    ("GET", "/api/v1/web/config"): EVERYONE,
    ("GET", "/api/v1/web/accounts/{address}"): EVERYONE,
    ("GET", "/api/v1/web/drivers/{address}"): VEHICLE,  # the driver's own address
    ("GET", "/api/v1/web/vehicles/{vehicle_id}/sessions"): VEHICLE,
    ("GET", "/api/v1/web/vehicles/{vehicle_id}/history"): VEHICLE,
    ("GET", "/api/v1/web/sessions/{session_id}"): SESSION,
    ("POST", "/api/v1/web/charges/authorization"): VEHICLE,
    ("POST", "/api/v1/web/charges"): VEHICLE,
    ("POST", "/api/v1/web/actions"): EVERYONE,
    ("POST", "/api/v1/web/actions/{nonce}"): EVERYONE,
    ("GET", "/api/v1/web/hosts/{address}"): CHARGER,  # the host's own address
    ("GET", "/api/v1/web/hosts/{address}/earnings"): CHARGER,
    ("GET", "/api/v1/web/chargers/{charger_id}/utilization"): CHARGER,
    ("POST", "/api/v1/web/stations/registration"): EVERYONE,
    ("POST", "/api/v1/web/staking/transactions"): EVERYONE,
    ("GET", "/api/v1/web/dao"): EVERYONE,
    ("POST", "/api/v1/web/dao/proposals"): EVERYONE,
    ("POST", "/api/v1/web/dao/votes"): EVERYONE,
    ("POST", "/api/v1/web/dao/steps"): EVERYONE,
    ("POST", "/api/v1/web/dao/delegation"): EVERYONE,
    ("GET", "/api/v1/openapi.json"): EVERYONE,
    ("GET", "/api/v1/docs"): EVERYONE,
    ("GET", "/docs/oauth2-redirect"): EVERYONE,
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/readyz"): EVERYONE,
    ("GET", "/metrics"): STAFF,
    ("POST", "/api/v1/auth/nonce"): EVERYONE,
    ("POST", "/api/v1/auth/siwe"): EVERYONE,
    ("POST", "/api/v1/auth/logout"): ADDRESSES,
    ("GET", "/api/v1/auth/me"): SIGNED_IN,
    ("GET", "/api/v1/stations/nearby"): EVERYONE,
    ("GET", "/api/v1/stations/{charger_id}"): EVERYONE,
    ("GET", "/api/v1/stations/{charger_id}/tariff"): EVERYONE,
    ("PUT", "/api/v1/stations/{charger_id}/tariff"): only("host", "admin"),
    ("GET", "/api/v1/stations/{charger_id}/lease"): CHARGER,
    ("PUT", "/api/v1/stations/{charger_id}/lease"): only("host", "admin"),
    ("GET", "/api/v1/stations/{charger_id}/status"): EVERYONE,
    ("GET", "/api/v1/stations/{charger_id}/price"): EVERYONE,
    ("GET", "/api/v1/vehicles"): SIGNED_IN,
    ("POST", "/api/v1/vehicles"): SIGNED_IN,
    ("GET", "/api/v1/vehicles/{vehicle_id}"): VEHICLE,
    ("GET", "/api/v1/vehicles/{vehicle_id}/wallet"): VEHICLE,
    ("GET", "/api/v1/vehicles/{vehicle_id}/wallet/deposit"): VEHICLE,
    ("POST", "/api/v1/vehicles/{vehicle_id}/wallet/topup"): VEHICLE,
    ("GET", "/api/v1/vehicles/{vehicle_id}/wallet/history"): VEHICLE,
    ("GET", "/api/v1/vehicles/{vehicle_id}/wallet/alerts"): VEHICLE,
    ("PUT", "/api/v1/vehicles/{vehicle_id}/wallet/alerts/{asset}"): VEHICLE,
    ("DELETE", "/api/v1/vehicles/{vehicle_id}/wallet/alerts/{asset}"): VEHICLE,
    ("GET", "/api/v1/sessions"): SIGNED_IN,
    ("POST", "/api/v1/sessions"): only("driver", "operator", "admin"),
    ("GET", "/api/v1/sessions/{session_id}"): SESSION,
    ("POST", "/api/v1/sessions/{session_id}/stop"): SESSION,
    ("GET", "/api/v1/sessions/{session_id}/progress"): SESSION,
    ("GET", "/api/v1/sessions/{session_id}/receipt"): SESSION,
    ("GET", "/api/v1/sessions/{session_id}/proof"): EVERYONE,
    ("GET", "/api/v1/host/chargers"): SIGNED_IN,
    ("GET", "/api/v1/host/earnings"): SIGNED_IN,
    ("GET", "/api/v1/host/chargers/{charger_id}/utilization"): CHARGER,
    ("GET", "/api/v1/host/chargers/{charger_id}/staking"): CHARGER,
    ("GET", "/api/v1/host/chargers/{charger_id}/tickets"): CHARGER,
    ("GET", "/api/v1/maintenance/tickets"): STAFF,
    ("GET", "/api/v1/dao/proposals"): EVERYONE,
    ("GET", "/api/v1/dao/proposals/{proposal_id}"): EVERYONE,
    ("GET", "/api/v1/dao/proposals/{proposal_id}/vote"): EVERYONE,
    ("GET", "/api/v1/dao/parameters"): EVERYONE,
    ("GET", "/api/v1/events"): EVERYONE,
    ("GET", "/api/v1/admin/api-keys"): only("admin"),
    ("DELETE", "/api/v1/admin/api-keys/{key_id}"): only("admin"),
    ("POST", "/api/v1/webhooks/{provider}"): EVERYONE,
}

QUERY: dict[str, dict[str, Any]] = {
    "/api/v1/stations/nearby": {"lat": 52.5, "lon": 13.4},
    "/api/v1/vehicles/{vehicle_id}/wallet/deposit": {"amount": "1000000"},
    "/api/v1/dao/proposals/{proposal_id}/vote": {"support": "for"},
}


def body_for(w: World, key: tuple[str, str], address: str | None) -> Any:
    vehicle = {"vinHash": "0x" + "ab" * 32, "owner": address or w.driver.address, "device": w.stranger.address}
    bodies: dict[tuple[str, str], Callable[[], Any]] = {
        ("POST", "/api/v1/auth/siwe"): lambda: {"message": "not a message", "signature": "0x00"},
        ("PUT", "/api/v1/stations/{charger_id}/tariff"): lambda: {"energy_price_per_wh": "300"},
        ("PUT", "/api/v1/stations/{charger_id}/lease"): lambda: {"public": True, "windows": ["daily 06:00-22:00"]},
        ("POST", "/api/v1/vehicles"): lambda: {
            "message": {**vehicle, "nonce": 0, "deadline": 1},
            "signature": "0x" + "00" * 65,
        },
        ("POST", "/api/v1/vehicles/{vehicle_id}/wallet/topup"): lambda: {"amount_cents": 500},
        ("PUT", "/api/v1/vehicles/{vehicle_id}/wallet/alerts/{asset}"): lambda: {"below": "1000"},
        ("POST", "/api/v1/sessions"): lambda: {"charger_id": w.charger_id, "vehicle_id": w.vehicle_id},
        ("POST", "/api/v1/webhooks/{provider}"): lambda: {},
        ("POST", "/api/v1/web/charges/authorization"): lambda: {"vehicle_id": w.vehicle_id, "charger_id": w.charger_id},
        ("POST", "/api/v1/web/charges"): lambda: {
            "charger_id": w.charger_id,
            "authorization": {"vehicleId": str(w.vehicle_id), "signature": "0x00"},
        },
    }
    make = bodies.get(key)
    return make() if make else None


def test_every_route_against_every_role(electra: Electra, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    migrate(engine)
    w = make_world(electra, engine, "MATRIX")
    # Every route is called once per role: more than one IP's anonymous budget; rate limits have a test of their own.
    limits = RateLimits(anonymous=Rate(100_000, 10_000), address=Rate(100_000, 10_000))
    app = create_app(engine, lambda: electra, rate_limits=limits)
    routes = {(m, str(rc.path)) for rc in iter_route_contexts(app.routes) for m in (rc.methods or set()) if m != "HEAD"}
    assert routes == set(MATRIX), f"routes without an entry: {routes - set(MATRIX)}; stale: {set(MATRIX) - routes}"
    params = {
        "charger_id": w.charger_id,
        "vehicle_id": str(w.vehicle_id),
        "session_id": str(w.session_id),
        "proposal_id": "1",
        "key_id": "0" * 16,
        "asset": "EUSD",
        "provider": "sandbox",
        "address": w.driver.address,
        "nonce": "0" * 32,
    }
    with serve(app) as url:
        tokens = {
            who: sign_in(url, acct) for who, acct in (("stranger", w.stranger), ("driver", w.driver), ("host", w.host))
        }
        headers: dict[str, dict[str, str]] = {
            "anonymous": {},
            **{who: bearer(t) for who, t in tokens.items()},
            "operator": {"X-API-Key": w.operator_key},
            "admin": {"Authorization": f"Bearer {w.admin_key}"},
        }
        addresses = {"stranger": w.stranger.address, "driver": w.driver.address, "host": w.host.address}
        failures = []
        with httpx.Client(base_url=url, timeout=30) as http:
            for (method, template), expected in sorted(
                MATRIX.items(), key=lambda kv: kv[0][0] == "POST" and "logout" in kv[0][1]
            ):
                path = template.replace("/hosts/{address}", f"/hosts/{w.host.address}")
                for name, value in params.items():
                    path = path.replace("{" + name + "}", value)
                for role in ROLES:
                    h = dict(headers[role])
                    if template.endswith("/logout") and role in tokens:
                        h = bearer(sign_in(url, getattr(w, role)))  # a token of its own to end
                    body = body_for(w, (method, template), addresses.get(role))
                    request = http.build_request(method, path, params=QUERY.get(template), json=body, headers=h)
                    r = http.send(request, stream=True)
                    status = r.status_code
                    r.close()
                    want = expected[role]
                    got_ok = status not in (401, 403, 500)
                    if (want == OK and not got_ok) or (want != OK and status != want):
                        failures.append(f"{method} {template} as {role}: {status}, expected {want}")
        assert failures == []


def test_drivers_see_only_their_sessions_and_hosts_only_their_chargers(electra: Electra, tmp_path: Path) -> None:
    from tests.apiworld import add_session, register_vehicle

    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    migrate(engine)
    w = make_world(electra, engine, "SEE")
    other_charger = "CP-API-OTHER"
    other_vehicle = register_vehicle(electra, "WVWZZZOTHER0000001", w.stranger.address)
    theirs = add_session(engine, other_charger, other_vehicle, uid="OTHER-1")
    at_host = add_session(engine, w.charger_id, other_vehicle, uid="AT-HOST-1")
    app = create_app(engine, lambda: electra)
    with serve(app) as url:
        driver, host = bearer(sign_in(url, w.driver)), bearer(sign_in(url, w.host))
        ids = lambda h: {s["id"] for s in httpx.get(f"{url}/api/v1/sessions", headers=h, timeout=30).json()["items"]}  # noqa: E731
        assert ids(driver) == {w.session_id}
        assert ids(host) == {w.session_id, at_host}
        assert ids({"X-API-Key": w.operator_key}) == {w.session_id, theirs, at_host}
        r = httpx.get(f"{url}/api/v1/sessions/{theirs}", headers=driver, timeout=30)
        assert r.status_code == 403 and r.json()["code"] == "not-your-session"
        assert httpx.get(f"{url}/api/v1/sessions/{at_host}/receipt", headers=driver, timeout=30).status_code == 403
        assert httpx.get(f"{url}/api/v1/sessions/{at_host}", headers=host, timeout=30).status_code == 200
        mine = httpx.get(f"{url}/api/v1/host/chargers", headers=host, timeout=30).json()["items"]
        assert [c["charger_id"] for c in mine] == [w.charger_id]
        r = httpx.get(f"{url}/api/v1/host/earnings", headers=host, params={"owner": w.driver.address}, timeout=30)
        assert r.status_code == 403
        r = httpx.get(
            f"{url}/api/v1/host/earnings",
            headers={"X-API-Key": w.operator_key},
            params={"owner": w.host.address},
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["owner"] == w.host.address
        r = httpx.get(f"{url}/api/v1/vehicles", headers=driver, timeout=30)
        assert [v["vehicle_id"] for v in r.json()["items"]] == [w.vehicle_id]


@pytest.mark.parametrize("credential", ["elt_not-a-token", "elk_0123456789abcdef_wrong", "garbage"])
def test_bad_credentials_are_401_even_on_public_routes(tmp_path: Path, credential: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    migrate(engine)
    with serve(create_app(engine)) as url:
        r = httpx.get(f"{url}/api/v1/stations/CP-X/tariff", headers=bearer(credential), timeout=10)
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "unauthenticated" and r.headers["www-authenticate"].startswith("Bearer")
        assert httpx.get(f"{url}/api/v1/stations/CP-X/tariff", timeout=10).status_code == 200
