"""Fuzzing the OCPP-J central system on a live server (127.0.0.1), deeper than the frame guard:
payloads are drawn that are valid against the official JSON schema of every action the central
system handles (OCPP 1.6 and 2.0.1), so they pass the guard and reach the
handlers and the store with every odd value the schema allows (huge integers, far-off dates,
unknown transaction ids, empty strings, every enum member); and the same payloads with one field
broken, which the guard must refuse with the spec's codes. A crash is an InternalError answer, no
answer, a dropped connection or a server that stops serving: none is allowed. The counts are
printed (`make security`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import ocpp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect

from electra.ocpp.directory import ChargerAdmission, StaticChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore
from electra.ocpp.v16.handlers import CentralSystemV16
from electra.ocpp.v201.handlers import CentralSystemV201
from tests.test_ocpp_frames import CODES, ServedSystem

pytestmark = pytest.mark.security

VERSIONS = {"ocpp1.6": CentralSystemV16, "ocpp2.0.1": CentralSystemV201}
CHARGER = {"ocpp1.6": "CP-FUZZ-16", "ocpp2.0.1": "CP-FUZZ-201"}
VALID_EXAMPLES = 1_000  # per version, spread over its actions
BROKEN_EXAMPLES = 500
ANSWER_TIMEOUT_S = 10.0
TALLY: Counter[str] = Counter()


def handled_actions(version: str) -> list[str]:
    cls = VERSIONS[version]
    return sorted(str(m._on_action.value) for _, m in inspect.getmembers(cls) if hasattr(m, "_on_action"))


def schema(version: str, action: str) -> dict[str, Any]:
    folder, name = ("v16", action) if version == "ocpp1.6" else ("v201", f"{action}Request")
    path = Path(ocpp.__file__).parent / folder / "schemas" / f"{name}.json"
    doc = json.loads(path.read_text(encoding="utf-8-sig"))
    doc.pop("$id", None)  # an urn:OCPP:... id is no base URI to resolve "#/definitions/..." against
    return dict(doc)


def _iso(t: dt.datetime) -> str:
    ms = t.microsecond // 1000
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms:03d}" if ms else "") + "Z"


_DATE_TIMES = st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(_iso)


def from_schema(node: dict[str, Any], root: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Values valid against ``node``, for the part of JSON Schema (draft 4 and 6) that the OCPP
    1.6 and 2.0.1 schemas use: $ref into definitions, type, enum, properties with required ones,
    no additional properties, string length and date-time format, integer and number bounds, array
    length. (hypothesis-jsonschema would do this, but its last release does not run on the
    hypothesis this project pins.) Optional properties are drawn or left out at random."""
    root = root or node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return st.deferred(lambda: from_schema(root["definitions"][name], root))
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**node, "type": k}, root) for k in kind])
    if kind == "object" or "properties" in node:
        props = node.get("properties", {})
        required = set(node.get("required", []))
        fixed = {k: from_schema(v, root) for k, v in props.items() if k in required}
        optional = {k: from_schema(v, root) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(fixed, optional=optional)
    if kind == "array":
        low, high = node.get("minItems", 0), min(node.get("maxItems", 4), max(node.get("minItems", 0), 4))
        return st.lists(from_schema(node.get("items", {}), root), min_size=low, max_size=high)
    if kind == "string":
        if node.get("format") == "date-time":
            return _DATE_TIMES
        return st.text(min_size=node.get("minLength", 0), max_size=node.get("maxLength", 64))
    if kind == "integer":
        return st.integers(node.get("minimum", -(2**63)), node.get("maximum", 2**63 - 1))
    if kind == "number":
        low, high = node.get("minimum"), node.get("maximum")
        return st.floats(low, high, allow_nan=False, allow_infinity=False) | st.integers(
            int(low) if low is not None else -(2**53), int(high) if high is not None else 2**53
        )
    if kind == "boolean":
        return st.booleans()
    return st.none() | st.booleans() | st.integers() | st.text(max_size=8)


def payloads(version: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    per_action = [st.tuples(st.just(a), from_schema(schema(version, a))) for a in handled_actions(version)]
    assert per_action
    return st.one_of(per_action)


junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=40), st.lists(st.integers(), max_size=3)
)


@st.composite
def broken(draw: st.DrawFn, version: str) -> tuple[str, dict[str, Any]]:
    action, payload = draw(payloads(version))
    how = draw(st.sampled_from(["replace", "drop", "extra"]))
    if how == "extra" or not payload:
        payload = {**payload, draw(st.text(min_size=1, max_size=12)): draw(junk)}
    elif how == "drop":
        payload = {k: v for k, v in payload.items() if k != draw(st.sampled_from(sorted(payload)))}
    else:
        payload = {**payload, draw(st.sampled_from(sorted(payload))): draw(junk)}
    return action, payload


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    store = CsmsStore.open(f"sqlite:///{tmp}/fuzz.db", meter_signing="optional")
    directory = StaticChargerDirectory({c: ChargerAdmission(c, i + 1, True) for i, c in enumerate(CHARGER.values())})
    served = ServedSystem(CentralSystem(directory, store, port=0, security_profile=0))
    served.start()
    yield served
    served.stop()
    store.engine.dispose()


async def exchange(ws: ClientConnection, action: str, payload: dict[str, Any]) -> list[Any]:
    """Sends one CALL and returns its answer; the central system's own CALLs are refused."""
    message_id = str(uuid.uuid4())
    await ws.send(json.dumps([2, message_id, action, payload]))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT_S))
        if frame[0] == 2:
            await ws.send(json.dumps([4, frame[1], "NotImplemented", "", {}]))
            continue
        if frame[1] == message_id:
            return list(frame)


def crash_free(answer: list[Any], version: str, frame: str) -> None:
    assert answer[0] in (3, 4), answer
    if answer[0] == 4:
        assert answer[2] != "InternalError", f"{frame} made the central system fail: {answer}"
        assert answer[2] in CODES[version], f"{answer[2]} is no {version} error code"


# The central system under test runs on a thread of this process, and websockets' keepalive ping
# draws its payload from the global `random` (websockets/asyncio/connection.py). When a ping falls
# inside a draw, hypothesis sees the global state move and blames the strategy. These strategies
# use hypothesis's own draws only, so that one warning is a false alarm here.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
@pytest.mark.parametrize("version", list(VERSIONS))
def test_schema_valid_and_broken_calls_never_crash_the_central_system(
    served: ServedSystem, version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = asyncio.Runner()
    url = f"{served.system.url}{CHARGER[version]}"

    async def open_connection() -> ClientConnection:
        return await connect(url, subprotocols=[version])  # type: ignore[list-item]

    ws = runner.run(open_connection())
    boot = {"chargePointVendor": "Fuzz", "chargePointModel": "Z"}
    if version == "ocpp2.0.1":
        boot = {"chargingStation": {"vendorName": "Fuzz", "model": "Z"}, "reason": "PowerUp"}
    assert runner.run(exchange(ws, "BootNotification", boot))[0] == 3
    answers: Counter[str] = Counter()
    actions: Counter[str] = Counter()

    def one(action: str, payload: dict[str, Any], kind: str) -> None:
        answer = runner.run(exchange(ws, action, payload))
        frame = json.dumps([2, "?", action, payload])[:300]
        crash_free(answer, version, frame)
        assert served.alive() and ws.close_code is None
        answers["result" if answer[0] == 3 else f"error {answer[2]}"] += 1
        actions[action] += 1
        TALLY[f"{version} {kind}"] += 1

    common = settings(
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )

    @settings(common, max_examples=VALID_EXAMPLES)
    @given(case=payloads(version))
    def valid(case: tuple[str, dict[str, Any]]) -> None:
        one(*case, kind="valid")

    @settings(common, max_examples=BROKEN_EXAMPLES)
    @given(case=broken(version))
    def invalid(case: tuple[str, dict[str, Any]]) -> None:
        one(*case, kind="broken")

    try:
        valid()
        valid_answers = dict(answers)
        invalid()
        assert runner.run(exchange(ws, "Heartbeat", {}))[0] == 3  # the connection still works
    finally:
        runner.run(ws.close())
        runner.close()
    assert set(actions) == set(handled_actions(version)), f"every handled action was reached: {actions}"
    assert valid_answers.get("result", 0) > 0  # schema-valid payloads got through to the handlers
    line = (
        f"OCPP fuzz {version}: {TALLY[f'{version} valid']} schema-valid and {TALLY[f'{version} broken']} broken "
        f"CALLs over {len(actions)} actions, 0 crashes; answers {dict(sorted(answers.items()))}"
    )
    with capsys.disabled():  # the count is the suite's output: shown whatever the capture mode
        print("\n" + line, flush=True)


def test_meter_values_that_would_exhaust_the_server_are_refused_at_once() -> None:
    """What the fuzzer found, pinned: a unit multiplier beyond Decimal's range (it raised
    InvalidOperation, an InternalError), and what it might not find, an exponent that would build
    an integer of a billion digits."""
    import time

    from electra.errors import InvalidInput
    from electra.ocpp.meter import to_wh

    assert to_wh("12.5", "kWh") == 12_500 and to_wh(3, "Wh", 3) == 3_000 and to_wh("1E3", None) == 1_000
    for value, unit, multiplier in (
        ("1", "Wh", 10**9),
        ("1", "Wh", -(10**9)),
        ("1E999999999", "Wh", 0),
        (1e308, "kWh", 0),
        ("1", "Wh", 15),
    ):
        t0 = time.monotonic()
        with pytest.raises(InvalidInput):
            to_wh(value, unit, multiplier)
        assert time.monotonic() - t0 < 0.1
