"""The websocket edge: `ws://HOST:PORT/ocpp/{charge_point_id}`, subprotocol ocpp1.6 or ocpp2.0.1.

A charge point id must belong to a registered charger NFT: an unknown id is refused at the
handshake with 404 and a deactivated or suspended one with 403, before any OCPP is spoken.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from electra.domain.station import check_charger_id
from electra.errors import InvalidInput
from electra.ocpp.directory import ChargerDirectory

LOG = logging.getLogger("electra.ocpp")
SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")
PATH_PREFIX = "/ocpp/"
MAX_FRAME_BYTES = 64 * 1024


@dataclass
class ChargerLive:
    """What the central system knows of a connected charger right now."""

    charger_id: str
    version: str
    token_id: int
    booted: bool = False
    vendor: str = ""
    model: str = ""
    firmware: str | None = None
    last_seen: float = 0.0
    connectors: dict[int, str] = field(default_factory=dict)


class ConnectionContext:
    """What a version's handlers may do; the same for 1.6 and 2.0.1."""

    def __init__(self, system: CentralSystem, live: ChargerLive) -> None:
        self.system = system
        self.live = live
        self.charger_id = live.charger_id
        self.heartbeat_interval_s = system.heartbeat_interval_s

    def now_iso(self) -> str:
        return dt.datetime.fromtimestamp(self.system.clock(), dt.UTC).isoformat().replace("+00:00", "Z")

    def boot(self, vendor: str, model: str, firmware: str | None) -> bool:
        # Checked again at boot: the charger may have been deactivated since the handshake.
        admission = self.system.directory.admission(self.charger_id)
        self.live.booted = admission.active
        self.live.vendor, self.live.model, self.live.firmware = vendor, model, firmware
        self.live.last_seen = self.system.clock()
        return admission.active

    def heartbeat(self) -> None:
        self.live.last_seen = self.system.clock()

    def status(self, connector_id: int, status: str, error_code: str | None, evse_id: int | None = None) -> None:
        self.live.connectors[connector_id] = status
        self.live.last_seen = self.system.clock()


class CentralSystem:
    def __init__(
        self,
        directory: ChargerDirectory,
        host: str = "127.0.0.1",
        port: int = 9000,
        heartbeat_interval_s: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self.heartbeat_interval_s = heartbeat_interval_s
        self.clock = clock
        self.live: dict[str, ChargerLive] = {}
        self._server: Server | None = None

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
            process_request=self._admit,
            max_size=MAX_FRAME_BYTES,
        )
        self.port = self._server.sockets[0].getsockname()[1] if self.port == 0 else self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if not path.startswith(PATH_PREFIX):
            return connection.respond(http.HTTPStatus.NOT_FOUND, "use /ocpp/{charge_point_id}\n")
        charger_id = path[len(PATH_PREFIX) :]
        try:
            check_charger_id(charger_id)
        except InvalidInput as exc:
            return connection.respond(http.HTTPStatus.BAD_REQUEST, exc.one_line() + "\n")
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        if not any(p.strip() in SUBPROTOCOLS for p in offered.split(",")):
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "offer subprotocol ocpp1.6 or ocpp2.0.1\n")
        admission = self.directory.admission(charger_id)
        if not admission.known:
            LOG.warning("refused unknown charger %s", charger_id)
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"charger {charger_id} is not registered\n")
        if not admission.active:
            LOG.warning("refused inactive charger %s", charger_id)
            return connection.respond(http.HTTPStatus.FORBIDDEN, f"charger {charger_id} is not active\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        from electra.ocpp.v16.handlers import CentralSystemV16
        from electra.ocpp.v201.handlers import CentralSystemV201

        charger_id = connection.request.path.split("?", 1)[0][len(PATH_PREFIX) :]  # type: ignore[union-attr]
        version = connection.subprotocol or ""
        admission = self.directory.admission(charger_id)
        live = ChargerLive(charger_id, version, admission.token_id, last_seen=self.clock())
        self.live[charger_id] = live
        ctx = ConnectionContext(self, live)
        cp: Any = CentralSystemV201(ctx, connection) if version == "ocpp2.0.1" else CentralSystemV16(ctx, connection)
        try:
            await cp.start()
        except ConnectionClosed:
            LOG.info("charger %s disconnected", charger_id)
        finally:
            if self.live.get(charger_id) is live:
                del self.live[charger_id]


async def run_forever(system: CentralSystem) -> None:
    await system.start()
    try:
        await asyncio.Future()
    finally:
        await system.stop()
