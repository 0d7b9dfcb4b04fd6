"""Bad input on the wire: raw websocket frames, no OCPP library on the client side.

One central system serves the whole module from a background thread with its own event loop, so
every test (and every hypothesis example) drives its own client loop against a server that stays
up between them. Expected CALLERROR codes follow the OCPP-J specifications: OCPP-J 1.6 section
4.2.3 (table 7, with the errata's "won't fix" spellings FormationViolation and
OccurenceConstraintViolation) and OCPP 2.0.1 Part 4 sections 4.2.3-4.4. Where the central system
chooses between two readings of a spec, the case says why.
"""

from __future__ import annotations

import asyncio
import json
import string
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from electra.ocpp.directory import ChargerAdmission, StaticChargerDirectory
from electra.ocpp.gateway import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, CentralSystem, CsmsStore
from electra.store.models import MeterValueRecord, OcppMessage, SessionRecord, TransactionEventSeen

VERSIONS = ["ocpp1.6", "ocpp2.0.1"]
CHARGERS = {"ocpp1.6": "CP-FRAMES-16", "ocpp2.0.1": "CP-FRAMES-201", "fuzz": "CP-FUZZ", "calm": "CP-CALM"}
TOKEN = "TAG-FRAMES"
TS = "2026-03-01T10:00:00Z"
ANSWER_TIMEOUT_S = 5.0
# The codes each version's table allows (1.6 keeps the misspellings its errata won't fix).
CODES = {
    "ocpp1.6": {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    },
    "ocpp2.0.1": {
        "FormatViolation",
        "GenericError",
        "InternalError",
        "MessageTypeNotSupported",
        "NotImplemented",
        "NotSupported",
        "OccurrenceConstraintViolation",
        "PropertyConstraintViolation",
        "ProtocolError",
        "RpcFrameworkError",
        "SecurityError",
        "TypeConstraintViolation",
    },
}


class ServedSystem:
    """A central system running in a thread of its own, for clients in the test's thread."""

    def __init__(self, system: CentralSystem) -> None:
        self.system = system
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="central-system", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> None:
        self.thread.start()
        self.run(self.system.start())

    def alive(self) -> bool:
        server = self.system._server
        return self.thread.is_alive() and server is not None and server.is_serving()

    def stop(self) -> None:
        self.run(self.system.stop())
        self.run(self.loop.shutdown_default_executor())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.loop.close()

    @property
    def store(self) -> CsmsStore:
        return self.system.store

    def url(self, key: str) -> str:
        return f"{self.system.url}{CHARGERS[key]}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp: Path = tmp_path_factory.mktemp("frames")
    store = CsmsStore.open(f"sqlite:///{tmp}/csms.db")
    store.tokens.issue(TOKEN, vehicle_id=3)
    directory = StaticChargerDirectory({c: ChargerAdmission(c, i + 1, True) for i, c in enumerate(CHARGERS.values())})
    served = ServedSystem(CentralSystem(directory, store, port=0, security_profile=0))
    served.start()
    yield served
    served.stop()
    store.engine.dispose()


# -- frames and answers -------------------------------------------------------------------------


def call(message_id: Any, action: Any, payload: Any) -> str:
    return json.dumps([2, message_id, action, payload])


def heartbeat_id() -> str:
    return str(uuid.uuid4())


async def answers_until_heartbeat(ws: ClientConnection) -> tuple[list[Any], Any]:
    """Sends a valid Heartbeat and returns what came before its answer, and the answer. The server
    handles one connection's frames in order, so what came before answered the earlier frames."""
    hb = heartbeat_id()
    await ws.send(call(hb, "Heartbeat", {}))
    before: list[Any] = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT_S))
        if isinstance(frame, list) and len(frame) > 1 and frame[1] == hb:
            return before, frame
        before.append(frame)


def assert_heartbeat_answer(frame: Any) -> None:
    assert isinstance(frame, list) and frame[0] == 3, f"the Heartbeat was not answered: {frame}"
    assert frame[2]["currentTime"].endswith("Z")


def assert_callerror_shape(frame: Any, version: str) -> None:
    assert isinstance(frame, list) and len(frame) == 5, frame
    kind, message_id, code, description, details = frame
    assert kind == 4
    assert isinstance(message_id, str) and 1 <= len(message_id) <= 36
    assert code in CODES[version], f"{code} is not a {version} error code"
    assert isinstance(description, str)
    assert isinstance(details, dict)


def row_counts(store: CsmsStore) -> dict[str, int]:
    tables = {
        "ocpp_messages": OcppMessage,
        "sessions": SessionRecord,
        "meter_values": MeterValueRecord,
        "transaction_events": TransactionEventSeen,
    }
    with store.engine.connect() as conn:
        return {name: conn.scalar(select(func.count()).select_from(model)) or 0 for name, model in tables.items()}


def logged(store: CsmsStore, charger_id: str, message_id: str) -> int:
    """How many times the message log holds this CALL of this charger."""
    where = (OcppMessage.charger_id == charger_id) & (OcppMessage.message_id == message_id)
    with store.engine.connect() as conn:
        return conn.scalar(select(func.count()).where(where)) or 0


# -- one bad frame at a time ---------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What the central system should answer: a CALLERROR with ``code`` and ``message_id``, a
    CALLRESULT for ``message_id`` (code None), or nothing at all (``ignored``)."""

    code: str | None = None
    message_id: str = "-1"
    ignored: bool = False
    logged: bool = False  # the CALL passed the schema, so it is in the message log though refused
    max_description: int | None = None


@dataclass(frozen=True)
class Case:
    name: str
    frames: dict[str, str | bytes]
    expect: dict[str, Expect]


def both(frame: str | bytes) -> dict[str, str | bytes]:
    return dict.fromkeys(VERSIONS, frame)


def codes(v16: str | None, v201: str | None, message_id: str = "-1", **kw: Any) -> dict[str, Expect]:
    return {"ocpp1.6": Expect(v16, message_id, **kw), "ocpp2.0.1": Expect(v201, message_id, **kw)}


ID_37 = "x" * 37
BIG = call("big-1", "DataTransfer", {"vendorId": "org.electra", "data": "y" * (70 * 1024)})


def meter_value_16(value: str) -> str:
    sampled = [{"value": value, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    payload = {"connectorId": 1, "transactionId": 1, "meterValue": [{"timestamp": TS, "sampledValue": sampled}]}
    return call("neg-1", "MeterValues", payload)


def meter_value_201(value: float) -> str:
    sampled = [{"value": value, "measurand": "Energy.Active.Import.Register"}]
    return call("neg-1", "MeterValues", {"evseId": 1, "meterValue": [{"timestamp": TS, "sampledValue": sampled}]})


def transaction_event(message_id: str, event: str, tx: str, *, value: float | None = None, ts: str = TS) -> str:
    payload: dict[str, Any] = {
        "eventType": event,
        "timestamp": ts,
        "triggerReason": "Authorized",
        "seqNo": 0 if event == "Started" else 5,
        "transactionInfo": {"transactionId": tx},
        "idToken": {"idToken": TOKEN, "type": "ISO14443"},
    }
    if value is not None:
        payload["meterValue"] = [{"timestamp": ts, "sampledValue": [{"value": value}]}]
    return call(message_id, "TransactionEvent", payload)


CASES = [
    Case(
        "not-json",
        both('[2, "nj-1", "Heartbeat", {'),
        codes("FormationViolation", "FormatViolation", "nj-1"),
    ),
    Case(
        "json-object",
        both('{"messageTypeId": 2, "messageId": "jo-1"}'),
        codes("ProtocolError", "RpcFrameworkError"),
    ),
    Case("json-string", both('"Heartbeat"'), codes("ProtocolError", "RpcFrameworkError")),
    Case("json-number", both("2"), codes("ProtocolError", "RpcFrameworkError")),
    Case("empty-array", both("[]"), codes("ProtocolError", "RpcFrameworkError")),
    Case("no-message-id", both("[2]"), codes("ProtocolError", "RpcFrameworkError")),
    Case(
        "message-id-not-a-string",
        both('[2, 42, "Heartbeat", {}]'),
        codes("ProtocolError", "RpcFrameworkError"),
    ),
    Case(
        "no-payload",
        both('[2, "np-1", "Heartbeat"]'),
        codes("ProtocolError", "RpcFrameworkError", "np-1"),
    ),
    Case(
        "one-element-too-many",
        both('[2, "ex-1", "Heartbeat", {}, {}]'),
        codes("ProtocolError", "RpcFrameworkError", "ex-1"),
    ),
    Case(
        "unknown-message-type",
        both('[7, "ut-1", "Heartbeat", {}]'),
        {"ocpp1.6": Expect(ignored=True), "ocpp2.0.1": Expect("MessageTypeNotSupported", "ut-1")},
    ),
    Case(
        "message-id-over-36-characters",
        both(call(ID_37, "Heartbeat", {})),
        codes("ProtocolError", "RpcFrameworkError"),
    ),
    Case(
        "null-payload",
        both(call("nul-1", "Heartbeat", None)),
        codes(None, None, "nul-1", logged=True),
    ),
    Case(
        "array-payload", both(call("arr-1", "Heartbeat", [])), codes("FormationViolation", "FormatViolation", "arr-1")
    ),
    Case("action-not-a-string", both(call("an-1", 42, {})), codes("FormationViolation", "FormatViolation", "an-1")),
    Case("unknown-action", both(call("ua-1", "MakeCoffee", {})), codes("NotImplemented", "NotImplemented", "ua-1")),
    Case(
        "action-of-the-other-direction",
        {"ocpp1.6": call("od-1", "Reset", {"type": "Soft"}), "ocpp2.0.1": call("od-1", "GetVariables", {})},
        codes("NotSupported", "NotSupported", "od-1"),
    ),
    Case(
        "action-of-the-other-version",
        {"ocpp1.6": call("ov-1", "TransactionEvent", {}), "ocpp2.0.1": call("ov-1", "StartTransaction", {})},
        codes("NotImplemented", "NotImplemented", "ov-1"),
    ),
    Case(
        "field-of-the-wrong-type",
        {
            "ocpp1.6": call("wt-1", "Authorize", {"idTag": 5}),
            "ocpp2.0.1": call("wt-1", "Authorize", {"idToken": {"idToken": 5, "type": "ISO14443"}}),
        },
        codes("TypeConstraintViolation", "TypeConstraintViolation", "wt-1"),
    ),
    Case(
        "required-field-missing",
        both(call("rm-1", "Authorize", {})),
        codes("OccurenceConstraintViolation", "OccurrenceConstraintViolation", "rm-1"),
    ),
    Case(
        "property-the-schema-lacks",
        both(call("xp-1", "Heartbeat", {"extra": 1})),
        codes("FormationViolation", "FormatViolation", "xp-1"),
    ),
    Case(
        "value-outside-the-enumeration",
        {
            "ocpp1.6": call("en-1", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "On"}),
            "ocpp2.0.1": call(
                "en-1",
                "StatusNotification",
                {"timestamp": TS, "connectorStatus": "On", "evseId": 1, "connectorId": 1},
            ),
        },
        codes("PropertyConstraintViolation", "PropertyConstraintViolation", "en-1"),
    ),
    Case(
        "stop-of-an-unknown-transaction",
        {
            "ocpp1.6": call("st-1", "StopTransaction", {"meterStop": 10, "timestamp": TS, "transactionId": 987654}),
            "ocpp2.0.1": transaction_event("st-1", "Ended", "TX-NOBODY-KNOWS"),
        },
        # 1.6 4.10 / 2.0.1 E: a sanity check never keeps the central system from answering; only the
        # message log keeps it (the row counts below show no session or reading was made).
        codes(None, None, "st-1", logged=True),
    ),
    Case(
        "negative-meter-start",
        {
            "ocpp1.6": call(
                "ms-1",
                "StartTransaction",
                {"connectorId": 1, "idTag": TOKEN, "meterStart": -5, "timestamp": TS},
            ),
            "ocpp2.0.1": transaction_event("ms-1", "Started", "TX-NEGATIVE", value=-5),
        },
        codes("PropertyConstraintViolation", "PropertyConstraintViolation", "ms-1", logged=True),
    ),
    Case(
        "negative-meter-value",
        {"ocpp1.6": meter_value_16("-5"), "ocpp2.0.1": meter_value_201(-5)},
        codes("PropertyConstraintViolation", "PropertyConstraintViolation", "neg-1", logged=True),
    ),
    Case(
        "timestamp-that-is-no-time",
        {
            "ocpp1.6": call(
                "tn-1", "StartTransaction", {"connectorId": 1, "idTag": TOKEN, "meterStart": 0, "timestamp": "x" * 300}
            ),
            "ocpp2.0.1": transaction_event("tn-1", "Updated", "TX-TIMELESS", ts="x" * 300),
        },
        {
            "ocpp1.6": Expect("PropertyConstraintViolation", "tn-1", logged=True),
            "ocpp2.0.1": Expect("PropertyConstraintViolation", "tn-1", logged=True, max_description=255),
        },
    ),
    Case(
        "message-over-64-KiB",
        both(BIG),
        codes("FormationViolation", "FormatViolation", "big-1"),
    ),
    Case("binary-frame", both(b"\x00\x01[2]"), codes("FormationViolation", "FormatViolation")),
    Case("result-for-no-call", both('[3, "rs-1", {}]'), dict.fromkeys(VERSIONS, Expect(ignored=True))),
    Case(
        "error-for-no-call", both('[4, "re-1", "GenericError", "", {}]'), dict.fromkeys(VERSIONS, Expect(ignored=True))
    ),
]


def frame_params() -> list[Any]:
    params = []
    for case in CASES:
        for version, frame in case.frames.items():
            params.append(pytest.param(version, frame, case.expect[version], id=f"{version}-{case.name}"))
    return params


@pytest.mark.parametrize(("version", "frame", "expect"), frame_params())
def test_a_bad_frame_gets_its_answer_and_the_connection_goes_on(
    served: ServedSystem, version: str, frame: str | bytes, expect: Expect
) -> None:
    before = row_counts(served.store)

    async def body() -> tuple[list[Any], Any, Any]:
        async with connect(served.url(version), subprotocols=[version]) as ws:  # type: ignore[list-item]
            await ws.send(frame)
            answers, hb_answer = await answers_until_heartbeat(ws)
            # Once more, so that a refused frame never leaves the connection half-broken.
            again, second = await answers_until_heartbeat(ws)
            assert again == []
            return answers, hb_answer, second

    answers, hb_answer, second = asyncio.run(body())
    assert_heartbeat_answer(hb_answer)
    assert_heartbeat_answer(second)
    if expect.ignored:
        assert answers == []
    else:
        assert len(answers) == 1, answers
        answer = answers[0]
        if expect.code is None:
            assert answer[:2] == [3, expect.message_id]
        else:
            assert_callerror_shape(answer, version)
            assert (answer[2], answer[1]) == (expect.code, expect.message_id)
            if expect.max_description is not None:
                assert len(answer[3]) <= expect.max_description
    after = row_counts(served.store)
    # Two Heartbeats are logged; the refused frame adds its own row only if it was a schema-valid CALL.
    refused_logged = 1 if expect.logged else 0
    assert after == {**before, "ocpp_messages": before["ocpp_messages"] + 2 + refused_logged}
    if expect.message_id != "-1":
        assert logged(served.store, CHARGERS[version], expect.message_id) == refused_logged


def test_the_big_frame_is_over_the_message_limit_but_under_the_websocket_limit() -> None:
    assert MAX_MESSAGE_BYTES == 64 * 1024
    assert MAX_MESSAGE_BYTES < len(BIG.encode()) < MAX_FRAME_BYTES


# -- random frames -------------------------------------------------------------------------------

ACTIONS = [
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    "TransactionEvent",
    "Reset",
    "GetVariables",
    "FirmwareStatusNotification",
    "NotifyEvent",
]
FIELDS = ["idTag", "idToken", "connectorId", "evseId", "status", "meterValue", "timestamp", "type", "vendorId"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
message_ids = st.text(min_size=1, max_size=36)
payloads = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=5)
call_frames = st.builds(
    lambda i, a, p: [2, i, a, p], message_ids, st.sampled_from(ACTIONS) | st.text(max_size=24), payloads
)
result_frames = st.builds(lambda i, p: [3, i, p], message_ids, payloads)
error_frames = st.builds(
    lambda i, c, d, p: [4, i, c, d, p], message_ids, st.text(max_size=30), st.text(max_size=30), payloads
)
shaped_frames = st.builds(
    lambda t, rest: [t, *rest],
    st.sampled_from([2, 3, 4, 5, 0, -1, 2.0, "2", None, True]),
    st.lists(json_values, max_size=5),
)
random_frames = st.one_of(
    st.one_of(call_frames, result_frames, error_frames, shaped_frames, json_values).map(json.dumps),
    st.text(max_size=120),
    st.text(alphabet=string.printable, max_size=60).map(lambda s: "[2," + s),
    st.binary(max_size=48),
)


def expected_kind(frame: str | bytes) -> tuple[str, str | None]:
    """("call", id): exactly one CALLRESULT or CALLERROR with that id. ("response", None): a
    CALLRESULT or CALLERROR for a call never made, which nobody answers. ("other", None): at most
    one CALLERROR."""
    if isinstance(frame, bytes):
        return "other", None
    try:
        msg = json.loads(frame)
    except ValueError:
        return "other", None
    if not isinstance(msg, list) or not msg or isinstance(msg[0], bool) or not isinstance(msg[0], int | float):
        return "other", None
    if len(msg) < 2 or not isinstance(msg[1], str) or not 1 <= len(msg[1]) <= 36:
        return "other", None
    if msg[0] == 2 and len(msg) == 4 and isinstance(msg[2], str) and isinstance(msg[3], dict):
        return "call", msg[1]
    if (msg[0] == 3 and len(msg) == 3) or (msg[0] == 4 and len(msg) == 5):
        return "response", None
    return "other", None


@dataclass
class Calm:
    """A second charger that keeps sending Heartbeats while the first one sends garbage."""

    ws: ClientConnection
    answered: int = 0
    failures: list[str] = field(default_factory=list)

    async def beat(self) -> None:
        while True:
            hb = heartbeat_id()
            try:
                await self.ws.send(call(hb, "Heartbeat", {}))
                answer = json.loads(await asyncio.wait_for(self.ws.recv(), ANSWER_TIMEOUT_S))
            except (ConnectionClosed, TimeoutError, ValueError) as exc:  # recorded; the test asserts there are none
                self.failures.append(repr(exc))
                return
            if answer[:2] != [3, hb]:
                self.failures.append(f"unexpected answer {answer}")
                return
            self.answered += 1
            await asyncio.sleep(0.005)


# The served system's keepalive pings (websockets) draw from the global `random` on another thread;
# hypothesis would blame the strategy (see tests/test_security_fuzz.py).
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
@pytest.mark.parametrize("version", VERSIONS)
def test_random_frames_never_break_the_server_or_the_other_charger(served: ServedSystem, version: str) -> None:
    async def open_connection(key: str, subprotocol: str) -> ClientConnection:
        return await connect(served.url(key), subprotocols=[subprotocol])  # type: ignore[list-item]

    runner = asyncio.Runner()
    fuzz = runner.run(open_connection("fuzz", version))
    calm = Calm(runner.run(open_connection("calm", "ocpp1.6")))
    beating = runner.get_loop().create_task(calm.beat())
    seen = {"call": 0, "response": 0, "other": 0}

    async def fire(frame: str | bytes) -> tuple[list[Any], Any]:
        await fuzz.send(frame)
        return await answers_until_heartbeat(fuzz)

    @settings(
        max_examples=250,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(frame=random_frames)
    def one_frame(frame: str | bytes) -> None:
        kind, message_id = expected_kind(frame)
        seen[kind] += 1
        answers, hb_answer = runner.run(fire(frame))
        assert_heartbeat_answer(hb_answer)
        assert served.alive()
        for answer in answers:
            assert isinstance(answer, list) and answer[0] in (3, 4), answer
            if answer[0] == 3:
                assert len(answer) == 3 and isinstance(answer[2], dict), answer
            else:
                assert_callerror_shape(answer, version)
                assert answer[2] != "InternalError", f"{frame!r} made the central system fail: {answer}"
        if kind == "call":
            assert len(answers) == 1, f"{frame!r} got {answers}"
            assert answers[0][1] == message_id
        elif kind == "response":
            assert answers == [], f"{frame!r} is a response nobody asked for, yet got {answers}"
        else:
            assert len(answers) <= 1, f"{frame!r} got {answers}"
            assert all(a[0] == 4 for a in answers), f"{frame!r} is no CALL, yet got {answers}"

    try:
        one_frame()
        # The garbage-sending connection is still a working charger connection ...
        _, last = runner.run(answers_until_heartbeat(fuzz))
        assert_heartbeat_answer(last)
        assert calm.ws.close_code is None
    finally:
        beating.cancel()
        runner.run(fuzz.close())
        runner.run(calm.ws.close())
        runner.close()
    # ... the other charger never lost its connection nor an answer ...
    assert calm.failures == []
    assert calm.answered > 0
    # ... and the server still serves, new connections included.
    assert served.alive()
    assert all(seen.values()), f"the strategy must reach every kind of frame: {seen}"

    async def fresh() -> Any:
        async with connect(served.url(version), subprotocols=[version]) as ws:  # type: ignore[list-item]
            return (await answers_until_heartbeat(ws))[1]

    assert_heartbeat_answer(asyncio.run(fresh()))
