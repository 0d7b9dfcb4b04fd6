"""The OCPP-J frame guard: every frame a charger sends is checked before the `ocpp` library routes it.

A frame that is too big, not JSON, not an OCPP-J message array, or a CALL whose payload breaks the
schema gets a CALLERROR with the code the version's spec names (1.6 says FormationViolation and
OccurenceConstraintViolation, 2.0.1 FormatViolation and OccurrenceConstraintViolation), and the
connection stays up. Nothing is stored for a frame that is not a well-formed CALL.
Every well-formed CALL is appended to the raw message log before its handler runs; the handler's
answer goes out only once the log row and the handler's own writes are committed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import OCPPError, PropertyConstraintViolationError
from ocpp.messages import Call, CallError, MessageType, unpack

from electra.errors import InvalidInput

LOG = logging.getLogger("electra.ocpp")
_ID = re.compile(r'^\s*\[\s*[234]\s*,\s*"([^"\\]{1,64})"')
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

    def _logging(self, inner: Any) -> Any:
        @functools.wraps(inner)
        def handler(*args: Any, **kwargs: Any) -> Any:
            self.ctx.log_pending()
            return inner(*args, **kwargs)

        return handler

    if TYPE_CHECKING:

        async def _send(self, message: str) -> None: ...
        async def _handle_call(self, msg: Call) -> Any: ...

    async def route_message(self, raw_msg: str | bytes) -> None:
        version = self._ocpp_version
        if isinstance(raw_msg, bytes):
            await self._send(call_error("-1", "FormatViolation", version, "OCPP-J frames are text, not binary"))
            return
        limit = self.ctx.system.max_message_bytes
        if len(raw_msg) > limit:
            await self._reject(raw_msg, "FormatViolation", f"message of {len(raw_msg)} bytes is over {limit}")
            return
        try:
            msg = unpack(raw_msg)
        except OCPPError as exc:
            cause = str((exc.details or {}).get("cause", exc.description))
            code = "FormatViolation" if isinstance(_safe_json(raw_msg), _Bad) else exc.code
            if version != "1.6" and code == "PropertyConstraintViolation":
                code = "MessageTypeNotSupported"
            await self._reject(raw_msg, code, cause)
            return
        if not isinstance(msg.unique_id, str) or not 1 <= len(msg.unique_id) <= MAX_ID:
            await self._send(call_error("-1", "ProtocolError", version, "the message id must be a string of 1-36"))
            return
        if msg.message_type_id != MessageType.Call:
            self._response_queue.put_nowait(msg)
            return
        if not isinstance(msg.action, str) or not isinstance(msg.payload, dict):
            await self._send(call_error(msg.unique_id, "FormatViolation", version, "a CALL is [2, id, action, {...}]"))
            return
        if msg.action not in self.route_map:
            known = msg.action in {a.value for a in self._actions}
            code, what = ("NotSupported", "is not supported here") if known else ("NotImplemented", "is not known")
            await self._send(call_error(msg.unique_id, code, version, f"action {msg.action[:64]} {what}"))
            return
        self.ctx.pending_call = (msg.unique_id, msg.action, raw_msg)
        try:
            await self._handle_call(msg)
        except OCPPError as exc:
            LOG.info("%s: %s %s refused: %s", self.ctx.charger_id, msg.action, msg.unique_id, exc.code)
            cause = (exc.details or {}).get("cause", "")
            await self._send(call_error(msg.unique_id, exc.code, version, exc.description, str(cause)[:512]))
        except Exception:  # a bug or a store failure: answer InternalError and keep the connection
            LOG.exception("%s: %s %s failed", self.ctx.charger_id, msg.action, msg.unique_id)
            await self._send(call_error(msg.unique_id, "InternalError", version, "the central system failed"))

    async def _reject(self, raw: str, code: str, cause: str) -> None:
        m = _ID.match(raw)
        unique_id = m.group(1) if m else "-1"
        LOG.info("%s: bad frame (%s): %s", self.ctx.charger_id, code, cause)
        await self._send(call_error(unique_id, code, self._ocpp_version, cause[:256]))


class _Bad:
    pass


def _safe_json(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return _Bad()


def as_ocpp_error(exc: InvalidInput) -> OCPPError:
    return PropertyConstraintViolationError(description=exc.one_line()[:256])
