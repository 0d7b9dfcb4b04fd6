"""The OCPP-J frame guard: every frame a charger sends is checked before the `ocpp` library routes it.

A frame that is too big, not JSON, not an OCPP-J message array, or a CALL whose payload breaks the
schema gets a CALLERROR with the code the version's spec names (1.6 says FormationViolation and
OccurenceConstraintViolation, 2.0.1 FormatViolation, OccurrenceConstraintViolation and
RpcFrameworkError), and the connection stays up. Nothing is stored for a frame that is not a
schema-valid CALL. See docs/ocpp.md for the table.
Every well-formed CALL is appended to the raw message log before its handler runs; the handler's
answer goes out only once the log row and the handler's own writes are committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema
import ocpp
from fastjsonschema import JsonSchemaValueException
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import OCPPError, PropertyConstraintViolationError
from ocpp.messages import Call, CallError, CallResult, MessageType, _DecimalEncoder, unpack
from websockets.exceptions import ConnectionClosed

from electra.errors import InvalidInput

LOG = logging.getLogger("electra.ocpp")


class _RefusalsAreNotErrors(logging.Filter):
    """The `ocpp` library logs a traceback at ERROR for every CALL a handler refuses; a refusal of a
    charger's bad input (an OCPPError) is routine and logged by Electra at INFO. Real failures
    still come through."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, OCPPError)


LIBRARY_LOG = logging.getLogger("electra.ocpp.library")
LIBRARY_LOG.addFilter(_RefusalsAreNotErrors())
_ID = re.compile(r'^\s*\[\s*\d+\s*,\s*"([^"\\]{1,36})"')
_RESPONSE = re.compile(r"^\s*\[\s*[34]\s*,")
MAX_ID = 36  # OCPP-J: the message id is a string of at most 36 characters

_V16_CODES = {"FormatViolation": "FormationViolation", "OccurrenceConstraintViolation": "OccurenceConstraintViolation"}
_V201_CODES = {v: k for k, v in _V16_CODES.items()}


def error_code(code: str, version: str) -> str:
    return (_V16_CODES if version == "1.6" else _V201_CODES).get(code, code)


def call_error(unique_id: str, code: str, version: str, description: str, cause: str = "") -> str:
    return CallError(unique_id, error_code(code, version), description, {"cause": cause} if cause else {}).to_json()


class GuardedRouting:
    """Mixed into the version's ChargePoint class (before it in the bases), whose ``_send``,
    ``_handle_call`` and ``_response_queue`` it uses."""

    ctx: Any
    _ocpp_version: str
    _actions: Any  # the version's Action enum
    _response_queue: asyncio.Queue[Any]
    route_map: dict[str, dict[str, Any]]

    def log_valid_calls(self) -> None:
        """Wraps every handler so that a CALL enters the message log once its payload passed the
        schema (the library validates before it calls the handler), and never before."""
        for handlers in self.route_map.values():
            inner = handlers.get("_on_action")
            if inner is not None:
                handlers["_on_action"] = self._logging(inner)
            # Requests are validated in route_message, with the spec's error codes; answers are
            # Electra's own dataclasses (checked against the schemas by the wire tests).
            handlers["_skip_schema_validation"] = True

    def _logging(self, inner: Any) -> Any:
        @functools.wraps(inner)
        def handler(*args: Any, **kwargs: Any) -> Any:
            self.ctx.log_pending()
            return inner(*args, **kwargs)

        return handler

    _connection: Any
    if TYPE_CHECKING:

        async def _send(self, message: str) -> None: ...

    async def start(self) -> None:
        """Reads frames; answers to the central system's own calls are routed at once, while the
        charger's CALLs are handled one after another by a worker. The library's loop awaits each
        handler before it reads again, so a charger's answer to, say, a Reset could wait behind a
        handler's database commit, and be lost if the charger then closes the connection."""
        inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        worker = asyncio.create_task(self._handle_calls(inbox))
        try:
            while True:
                message = await self._connection.recv()
                if isinstance(message, str) and _RESPONSE.match(message):
                    await self.route_message(message)
                else:
                    inbox.put_nowait(message)
        finally:
            inbox.put_nowait(None)
            await worker

    async def _handle_calls(self, inbox: asyncio.Queue[str | bytes | None]) -> None:
        while (message := await inbox.get()) is not None:
            try:
                await self.route_message(message)
            except ConnectionClosed:
                return  # the charger is gone; what it did not get an answer for, it sends again

    async def route_message(self, raw_msg: str | bytes) -> None:
        version = self._ocpp_version
        rpc_error = "ProtocolError" if version == "1.6" else "RpcFrameworkError"
        if isinstance(raw_msg, bytes):
            await self._send(call_error("-1", "FormatViolation", version, "OCPP-J frames are text, not binary"))
            return
        limit = self.ctx.system.max_message_bytes
        if len(raw_msg) > limit:
            await self._reject(raw_msg, "FormatViolation", f"message of {len(raw_msg)} bytes is over {limit}")
            return
        try:
            frame = json.loads(raw_msg)
        except ValueError:
            await self._reject(raw_msg, "FormatViolation", "the message is not valid JSON")
            return
        if not isinstance(frame, list) or not frame or not isinstance(frame[0], int) or isinstance(frame[0], bool):
            await self._send(call_error("-1", rpc_error, version, "an OCPP-J message is [type, id, ...]"))
            return
        unique_id = frame[1] if len(frame) > 1 else None
        id_ok = isinstance(unique_id, str) and 1 <= len(unique_id) <= MAX_ID
        shown_id = unique_id if id_ok else "-1"
        kind = frame[0]
        if kind not in (MessageType.Call, MessageType.CallResult, MessageType.CallError):
            if version != "1.6":  # 1.6 (4.1.3): a server SHALL ignore an unknown message type
                await self._send(call_error(shown_id, "MessageTypeNotSupported", version, f"message type {kind}"))
            return
        if not id_ok:
            await self._send(call_error("-1", rpc_error, version, "the message id must be a string of 1-36"))
            return
        if kind != MessageType.Call:
            try:
                self._response_queue.put_nowait(unpack(raw_msg))
            except OCPPError:
                LOG.info("%s: ignored a malformed response %s", self.ctx.charger_id, unique_id)
            return
        if len(frame) != 4:
            await self._send(call_error(unique_id, rpc_error, version, "a CALL is [2, id, action, payload]"))
            return
        action, payload = frame[2], frame[3]
        if payload is None:
            payload = {}  # OCPP-J: an empty payload may be written null or {}
        if not isinstance(action, str) or not isinstance(payload, dict):
            await self._send(call_error(unique_id, "FormatViolation", version, "a CALL is [2, id, action, {...}]"))
            return
        if action not in self.route_map:
            known = action in {a.value for a in self._actions}
            code, what = ("NotSupported", "is not supported here") if known else ("NotImplemented", "is not known")
            await self._send(call_error(unique_id, code, version, f"action {action[:64]} {what}"))
            return
        refusal = schema_check(version, action, payload)
        if refusal is None:
            refusal = integer_range_check(payload)
        if refusal is not None:
            await self._send(call_error(unique_id, refusal[0], version, refusal[1][:255]))
            return
        self.ctx.pending_call = (unique_id, action, raw_msg)
        try:
            await self._handle_call(Call(unique_id, action, payload))
        except OCPPError as exc:
            LOG.info("%s: %s %s refused: %s", self.ctx.charger_id, action, unique_id, exc.code)
            cause = (exc.details or {}).get("cause", "")
            await self._send(call_error(unique_id, exc.code, version, exc.description[:255], str(cause)[:512]))
        except ConnectionClosed:
            raise  # the charger went away mid-call; its connection handler ends
        except Exception as exc:  # a bug or a store failure: answer InternalError and keep the connection
            from electra.store.db import store_error

            known = store_error(exc)
            if known is None:
                LOG.exception("%s: %s %s failed", self.ctx.charger_id, action, unique_id)
            else:  # the operator's problem, said in one line; the charger sends it again later
                LOG.error("%s: %s %s not stored: %s", self.ctx.charger_id, action, unique_id, known.one_line())
            await self._send(call_error(unique_id, "InternalError", version, "the central system failed"))

    async def _handle_call(self, msg: Call) -> None:
        """Runs the action's handler and sends its answer. Replaces the library's version, which
        inspects the handler's signature and re-validates on every call: the payload was checked
        in route_message and handlers raise OCPP errors that route_message turns into CALLERRORs."""
        handler = self.route_map[msg.action]["_on_action"]
        response = handler(**snake_keys(msg.payload))
        if inspect.isawaitable(response):
            response = await response
        await self._send(call_result_json(msg.unique_id, response))

    async def _reject(self, raw: str, code: str, cause: str) -> None:
        m = _ID.match(raw)
        unique_id = m.group(1) if m else "-1"
        LOG.info("%s: bad frame (%s): %s", self.ctx.charger_id, code, cause)
        await self._send(call_error(unique_id, code, self._ocpp_version, cause[:255]))


# jsonschema keyword -> OCPP error (1.6 4.2.3 and 2.0.1 Part 4 4.3 define the codes).
_SCHEMA_CODES = {
    "type": "TypeConstraintViolation",  # 'somestring': 12
    "maxLength": "TypeConstraintViolation",  # CiString20Type and friends are data types
    "required": "OccurrenceConstraintViolation",
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
    "additionalProperties": "FormatViolation",
    "enum": "PropertyConstraintViolation",  # syntactically right, a value not allowed
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "minLength": "PropertyConstraintViolation",
    "pattern": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",
}


def schema_check(version: str, action: str, payload: dict[str, Any]) -> tuple[str, str] | None:
    """Validates a CALL payload against the version's official JSON schema (the files shipped with
    the `ocpp` library), compiled once per action with fastjsonschema: about 15x cheaper per
    message than the library's interpreted jsonschema check (docs/benchmarks.md). Returns
    (error code, description), or None when the payload conforms."""
    try:
        _validator(version, action)(payload)
    except JsonSchemaValueException as exc:
        where = (exc.name or "data").removeprefix("data").lstrip(".") or "payload"
        return _SCHEMA_CODES.get(str(exc.rule), "FormatViolation"), f"{where}: {exc.message}"
    return None


def _lenient(_value: str) -> bool:
    return True  # like the reference library: times are checked when parsed, not by the schema


@functools.lru_cache(maxsize=256)
def _validator(version: str, action: str) -> Any:
    folder = "v16" if version == "1.6" else "v201"
    name = action if version == "1.6" else f"{action}Request"
    path = Path(ocpp.__file__).parent / folder / "schemas" / f"{name}.json"
    schema = json.loads(path.read_text(encoding="utf-8-sig"))
    return fastjsonschema.compile(schema, formats={"date-time": _lenient, "uri": _lenient})


@functools.lru_cache(maxsize=4096)
def _snake(key: str) -> str:
    (converted,) = camel_to_snake_case({key: None})
    return str(converted)


def snake_keys(data: Any) -> Any:
    """The library's camelCase to snake_case conversion, with each key converted once per process
    and no call per scalar value (most values of a payload are scalars)."""
    if isinstance(data, dict):
        return {_snake(k): snake_keys(v) if isinstance(v, (dict, list)) else v for k, v in data.items()}
    if isinstance(data, list):
        return [snake_keys(v) if isinstance(v, (dict, list)) else v for v in data]
    return data


# One encoder for every answer: json.dumps(..., cls=...) as the library calls it builds a new one
# each time. The same settings, so the same text.
_RESULT_ENCODER = _DecimalEncoder(separators=(",", ":"))


class _Unusual(Exception):
    """A value the fast path leaves to the library (a tuple: the library keeps its Nones and keys)."""


def call_result_json(unique_id: str, response: Any) -> str:
    """The CALLRESULT frame for a handler's answer (a call_result dataclass): the same text as the
    library's ``snake_to_camel_case(remove_nones(serialize_as_dict(response)))`` in a
    ``CallResult(...).to_json()``, in one pass over the answer with each field's wire name
    computed once per class."""
    try:
        payload = _wire(response)
    except _Unusual:
        payload = snake_to_camel_case(remove_nones(serialize_as_dict(response)))
    return _RESULT_ENCODER.encode([CallResult.message_type_id, unique_id, payload])


def _wire(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel(k): _wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_wire(v) for v in value if v is not None]
    if isinstance(value, tuple):
        raise _Unusual
    names = _wire_names(type(value))
    if names is None:
        return value  # a scalar: str, int, float, bool, an enum (a str), Decimal
    out = {}
    for name, wire_name in names:
        v = getattr(value, name)
        if v is not None:
            out[wire_name] = _wire(v)
    return out


@functools.lru_cache(maxsize=1024)
def _wire_names(cls: type) -> tuple[tuple[str, str], ...] | None:
    """(field, wire name) of a dataclass, in field order; None for any other class."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple((f.name, _camel(f.name)) for f in dataclasses.fields(cls))


@functools.lru_cache(maxsize=4096)
def _camel(key: str) -> str:
    (converted,) = snake_to_camel_case({key: None})
    return str(converted)


def as_ocpp_error(exc: InvalidInput) -> OCPPError:
    return PropertyConstraintViolationError(description=exc.one_line()[:255])


INT32 = (-(2**31), 2**31 - 1)  # OCPP-J integers are 32-bit signed (1.6 JSON spec, 2.0.1 part 2)


def integer_range_check(payload: Any, path: str = "") -> tuple[str, str] | None:
    """PropertyConstraintViolation for the first integer outside OCPP's 32-bit range (the JSON
    schemas give no bound, and the store's columns could not hold it)."""
    if isinstance(payload, bool):
        return None
    if isinstance(payload, int):
        if not INT32[0] <= payload <= INT32[1]:
            return "PropertyConstraintViolation", f"{path or 'value'} {payload} is outside OCPP's 32-bit integer range"
        return None
    if isinstance(payload, dict):
        for k, v in payload.items():
            found = integer_range_check(v, f"{path}.{k}" if path else str(k))
            if found is not None:
                return found
    elif isinstance(payload, list):
        for i, v in enumerate(payload):
            found = integer_range_check(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None
