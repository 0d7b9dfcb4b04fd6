"""The operator's control channel: JSON over a websocket on the central system's own port.

``ws(s)://HOST:PORT/control``, subprotocol ``electra.control.v1``, header
``Authorization: Bearer <token>``. The token is ``ELECTRA_CONTROL_TOKEN`` or the file
``<data_dir>/csms/control.token`` the central system creates (mode 0600) on first start.

Request ``{"id": 1, "op": "reset", "args": {"charger_id": "CP-1", "hard": false}}``; answer
``{"id": 1, "ok": true, "result": {...}}`` or ``{"id": 1, "ok": false, "error": "...", "fix": "..."}``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from electra.errors import ConfigError, ElectraError, InvalidInput
from electra.ocpp.commands import ChargerUnavailable, Commands

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from electra.ocpp.gateway import CentralSystem

LOG = logging.getLogger("electra.ocpp.control")
OPS = {
    "chargers": ("connected", ()),
    "remote_start": ("remote_start", ("charger_id", "id_token", "connector_id")),
    "remote_stop": ("remote_stop", ("charger_id", "transaction")),
    "reset": ("reset", ("charger_id", "hard")),
    "trigger": ("trigger", ("charger_id", "message", "connector_id")),
    "get_config": ("get_config", ("charger_id", "keys")),
    "set_config": ("set_config", ("charger_id", "key", "value")),
    "set_charging_profile": ("set_charging_profile", ("charger_id", "limit_w", "connector_id")),
    "data_transfer": ("data_transfer", ("charger_id", "vendor_id", "message_id", "data")),
}


def load_or_create_token(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def read_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError as exc:
        raise ConfigError(f"no control token at {path}", "start the central system first (electra csms)") from exc


async def serve_control(system: CentralSystem, connection: ServerConnection) -> None:
    commands = Commands(system)
    try:
        async for raw in connection:
            await connection.send(json.dumps(await _answer(commands, raw), default=str))
    except ConnectionClosed:
        LOG.debug("control connection closed")


async def _answer(commands: Commands, raw: str | bytes) -> dict[str, Any]:
    req_id: Any = None
    try:
        req = json.loads(raw)
        if not isinstance(req, dict) or not isinstance(req.get("op"), str):
            raise InvalidInput("a control request is {id, op, args}", "see electra.ocpp.control")
        req_id = req.get("id")
        if req["op"] not in OPS:
            raise InvalidInput(f"unknown operation {req['op']!r}", "one of " + ", ".join(sorted(OPS)))
        method, params = OPS[req["op"]]
        args = req.get("args") or {}
        if not isinstance(args, dict) or set(args) - set(params):
            raise InvalidInput(f"arguments of {req['op']} are {', '.join(params) or 'none'}", "check the request")
        fn = getattr(commands, method)
        result = fn(**args)
        if hasattr(result, "__await__"):
            result = await result
        return {"id": req_id, "ok": True, "result": result}
    except ValueError as exc:
        return {"id": req_id, "ok": False, "error": f"not JSON: {exc}", "fix": None}
    except TypeError as exc:
        return {"id": req_id, "ok": False, "error": f"bad arguments: {exc}", "fix": None}
    except ElectraError as exc:
        return {"id": req_id, "ok": False, "error": exc.cause, "fix": exc.fix}


class ControlClient:
    """What the CLI uses to ask a running central system to act."""

    def __init__(self, url: str, token: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.url = url.rstrip("/") + "/control"
        self.token = token
        self.ssl_context = ssl_context

    async def request(self, op: str, **args: Any) -> Any:
        try:
            async with connect(
                self.url,
                subprotocols=["electra.control.v1"],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {self.token}"},
                ssl=self.ssl_context,
                open_timeout=10,
            ) as ws:
                await ws.send(json.dumps({"id": 1, "op": op, "args": {k: v for k, v in args.items() if v is not None}}))
                answer = json.loads(await ws.recv())
        except InvalidStatus as exc:
            raise ConfigError(
                f"the central system refused the control connection ({exc.response.status_code})",
                "check the control token (ELECTRA_CONTROL_TOKEN or <data_dir>/csms/control.token)",
            ) from exc
        except OSError as exc:
            raise ChargerUnavailable(
                f"cannot reach the central system at {self.url}: {exc.strerror or exc}", "start it with electra csms"
            ) from exc
        if not answer.get("ok"):
            raise ElectraError(answer.get("error", "failed"), answer.get("fix"))
        return answer["result"]
