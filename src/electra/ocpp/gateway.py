"""The websocket edge: `ws://HOST:PORT/ocpp/{charge_point_id}`, subprotocol ocpp1.6 or ocpp2.0.1.

A charge point id must belong to a registered charger NFT: an unknown id is refused at the
handshake with 404 and a deactivated or suspended one with 403, before any OCPP is spoken.
With security profile 1 (or 2, which adds TLS) the handshake must also carry HTTP Basic auth with
the charger's own password (401 otherwise). The same server takes operator commands on
`/control` (see :mod:`electra.ocpp.control`), with a bearer token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import hmac
import http
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from electra.charging.meter_data import REQUIRED, MeterDataVerifier, MeterKeyBook
from electra.charging.service import SessionService
from electra.charging.tokens import TokenInfo, TokenRegistry
from electra.domain.station import check_charger_id
from electra.errors import InvalidInput
from electra.ocpp.auth import CredentialStore, parse_basic_auth
from electra.ocpp.directory import ChargerDirectory
from electra.store.db import make_engine, migrate
from electra.store.models import OcppMessage
from electra.store.writer import GroupCommitWriter

LOG = logging.getLogger("electra.ocpp")
SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")
CONTROL_SUBPROTOCOL = "electra.control.v1"
PATH_PREFIX = "/ocpp/"
CONTROL_PATH = "/control"
ELECTRA_VENDOR = "org.electra"  # DataTransfer vendor id
# A CALL over this many bytes gets a CALLERROR and the connection stays; a frame over the websocket
# limit (16x as big) closes the connection with 1009, as there is no sane way to read it.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_FRAME_BYTES = 16 * MAX_MESSAGE_BYTES
OCPP_MESSAGES = OcppMessage.__table__


class CsmsStore:
    """What the central system persists into: one engine, one group-commit writer, and the
    services over them. Signed meter data is verified (``meter_signing``: whether chargers must sign,
    unless their row in ``meter_keys`` says otherwise)."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time, meter_signing: str = REQUIRED) -> None:
        self.engine = engine
        self.writer = GroupCommitWriter(engine)
        self.tokens = TokenRegistry(engine)
        self.credentials = CredentialStore(engine)
        self.meter_keys = MeterKeyBook(engine, clock=clock)
        self.meter = MeterDataVerifier(self.meter_keys, meter_signing)
        self.sessions = SessionService(engine, self.writer, self.tokens, clock=clock, meter=self.meter)

    @classmethod
    def open(cls, url: str, clock: Callable[[], float] = time.time, meter_signing: str = REQUIRED) -> CsmsStore:
        engine = make_engine(url)
        migrate(engine)
        return cls(engine, clock, meter_signing)

    async def start(self) -> None:
        await self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()


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
    connected_at: float = 0.0
    connectors: dict[int, str] = field(default_factory=dict)
    cp: Any = None  # the version's ChargePoint object, for CSMS-initiated calls


class ConnectionContext:
    """What a version's handlers may do; the same for 1.6 and 2.0.1."""

    def __init__(self, system: CentralSystem, live: ChargerLive) -> None:
        self.system = system
        self.live = live
        self.charger_id = live.charger_id
        self.version = live.version
        self.sessions = system.store.sessions
        self.heartbeat_interval_s = system.heartbeat_interval_s
        self._logged: asyncio.Future[Any] | None = None
        self.pending_call: tuple[str, str, str] | None = None

    def now_iso(self) -> str:
        return dt.datetime.fromtimestamp(self.system.clock(), dt.UTC).isoformat().replace("+00:00", "Z")

    def log_pending(self) -> None:
        """Queues the CALL being handled for the message log; :meth:`durable` waits for it."""
        if self.pending_call is None:
            return
        (message_id, action, raw), self.pending_call = self.pending_call, None
        self.system.messages_received += 1
        fut = self.system.store.writer.rows(
            OCPP_MESSAGES,
            [
                {
                    "charger_id": self.charger_id,
                    "message_id": message_id[:64],
                    "action": action[:64],
                    "received_at_ms": int(self.system.clock() * 1000),
                    "payload": raw,
                }
            ],
        )
        fut.add_done_callback(_consume)
        self._logged = fut

    async def durable(self) -> None:
        """Returns once the CALL being handled is in the message log."""
        fut, self._logged = self._logged, None
        if fut is not None:
            await fut
        self.system.messages_persisted += 1

    async def boot(self, vendor: str, model: str, firmware: str | None) -> bool:
        # Checked again at boot: the charger may have been deactivated since the handshake.
        admission = await asyncio.to_thread(self.system.directory.admission, self.charger_id)
        self.system.store.meter.know_device(self.charger_id, admission.device)
        self.live.booted = admission.active
        self.live.vendor, self.live.model, self.live.firmware = vendor, model, firmware
        self.live.last_seen = self.system.clock()
        await self.sessions.booted(self.charger_id, self.version, vendor, model, firmware, admission.active)
        await self.durable()
        return admission.active

    async def heartbeat(self) -> None:
        self.live.last_seen = self.system.clock()
        await self.sessions.seen(self.charger_id)
        await self.durable()

    async def status(self, connector_id: int, status: str, error_code: str | None) -> None:
        self.live.connectors[connector_id] = status
        self.live.last_seen = self.system.clock()
        await self.sessions.connector_status(self.charger_id, connector_id, status, error_code)
        await self.durable()

    async def data_transfer(self, vendor_id: str, message_id: str | None, data: Any) -> tuple[str, Any]:
        """(status, data) for a charger's DataTransfer: vendor ``org.electra`` answers ``ping`` with
        its data; other vendors are unknown."""
        await self.durable()
        if vendor_id != ELECTRA_VENDOR:
            return "UnknownVendorId", None
        if message_id == "ping":
            return "Accepted", data
        return "UnknownMessageId", None

    async def authorize(self, id_token: str) -> TokenInfo:
        info = await self.sessions.authorize(id_token)
        info, _ = await self.sessions.admit(self.charger_id, info, int(self.system.clock() * 1000))
        await self.durable()
        return info


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved here so an unawaited failure is not reported twice


class GcPolicy:
    """Keeps the cyclic garbage collector from stalling a central system that holds many connections.

    Two things make CPython's collector costly here. Every call in flight (thousands while the
    writer commits a batch) holds a handful of container objects; with the default young
    threshold (700 allocations) they survive a few young collections, get promoted, die in the
    oldest generation and make full collections frequent. And a full collection walks every live
    object, which with 10,000 connections is over a second of stalled event loop. So the young
    threshold is raised (in-flight objects are freed by reference counting before a collection
    sees them; 200,000 rather than 50,000 because with 10,000 chargers in a burst a young
    collection still walked the calls in flight 20 times in 12 s, 15% of the CPU per call, and
    found no garbage), and once a wave of connections has settled, everything alive is frozen
    (``gc.freeze``): moved out of the collector's sight for good. Connections that close later
    leave their frozen cycles behind until the chargers connected fall well below the frozen
    count; then it is unfrozen, collected once and frozen again.
    """

    def __init__(self, young: int = 200_000, middle: int = 20, old: int = 20, interval_s: float = 5.0) -> None:
        self.thresholds = (young, middle, old)
        self.interval_s = interval_s
        self.frozen_at = 0
        self.freezes = 0
        self._last = 0
        self._saved: tuple[int, int, int] | None = None

    def install(self) -> None:
        if self._saved is None:
            self._saved = gc.get_threshold()
            gc.set_threshold(*self.thresholds)

    def uninstall(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def tick(self, connected: int) -> None:
        """Called every ``interval_s`` with the number of chargers connected."""
        settled = connected == self._last
        self._last = connected
        if not settled:
            return
        if connected >= self.frozen_at + max(100, self.frozen_at // 10):
            gc.freeze()
        elif self.frozen_at and connected < self.frozen_at * 3 // 4:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        else:
            return
        self.frozen_at = connected
        self.freezes += 1
        # Not gc.get_freeze_count(): it walks every frozen object, tens of ms with 10,000 chargers.
        LOG.info("froze the heap with %d chargers connected", connected)

    async def run(self, connected: Callable[[], int]) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.tick(connected())


class CentralSystem:
    def __init__(
        self,
        directory: ChargerDirectory,
        store: CsmsStore,
        host: str = "127.0.0.1",
        port: int = 9000,
        *,
        security_profile: int = 1,
        ssl_context: ssl.SSLContext | None = None,
        control_token: str | None = None,
        heartbeat_interval_s: int = 300,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        clock: Callable[[], float] = time.time,
        gc_policy: GcPolicy | None = None,
    ) -> None:
        if security_profile not in (0, 1, 2):
            raise InvalidInput(f"security profile {security_profile}", "Electra supports OCPP security profiles 0-2")
        if security_profile == 2 and ssl_context is None:
            raise InvalidInput("security profile 2 needs TLS", "configure a certificate and key")
        self.directory = directory
        self.store = store
        self.host = host
        self.port = port
        self.security_profile = security_profile
        self.ssl_context = ssl_context
        self.control_token = control_token
        self.heartbeat_interval_s = heartbeat_interval_s
        self.max_message_bytes = max_message_bytes
        self.clock = clock
        self.live: dict[str, ChargerLive] = {}
        self.messages_received = 0
        self.messages_persisted = 0
        self.gc_policy = gc_policy
        self._server: Server | None = None
        self._gc_task: asyncio.Task[None] | None = None

    @property
    def scheme(self) -> str:
        return "wss" if self.ssl_context is not None else "ws"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{PATH_PREFIX}"

    async def start(self) -> None:
        import ocpp.messages

        # Schema validation in the event loop: a thread-pool hop per message costs more than the check.
        ocpp.messages.ASYNC_VALIDATION = False
        await self.store.start()
        try:
            self._server = await serve(
                self._handle,
                self.host,
                self.port,
                subprotocols=[*SUBPROTOCOLS, CONTROL_SUBPROTOCOL],  # type: ignore[list-item]
                process_request=self._admit,
                max_size=MAX_FRAME_BYTES,
                ssl=self.ssl_context,
                compression=None,
            )
        except OSError as exc:
            await self.store.stop()
            from electra.errors import ConfigError

            raise ConfigError(
                f"the central system cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                "stop what uses the port or set ELECTRA_CSMS_PORT",
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1] if self.port == 0 else self.port
        if self.gc_policy is not None:
            self.gc_policy.install()
            self._gc_task = asyncio.create_task(self.gc_policy.run(lambda: len(self.live)), name="electra-gc")

    async def stop(self) -> None:
        if self._gc_task is not None:
            self._gc_task.cancel()
            self._gc_task = None
        if self.gc_policy is not None:
            self.gc_policy.uninstall()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.store.stop()

    async def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == CONTROL_PATH:
            return self._admit_control(connection, request.headers)
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
        if self.security_profile >= 1:
            refused = await self._check_password(connection, charger_id, request.headers)
            if refused is not None:
                return refused
        admission = await asyncio.to_thread(self.directory.admission, charger_id)
        if not admission.known:
            LOG.warning("refused unknown charger %s", charger_id)
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"charger {charger_id} is not registered\n")
        if not admission.active:
            LOG.warning("refused inactive charger %s", charger_id)
            return connection.respond(http.HTTPStatus.FORBIDDEN, f"charger {charger_id} is not active\n")
        return None

    async def _check_password(self, connection: ServerConnection, charger_id: str, headers: Headers) -> Response | None:
        creds = parse_basic_auth(headers.get("Authorization"))
        ok = False
        if creds is not None and creds[0] == charger_id:
            ok = await asyncio.to_thread(self.store.credentials.verify, charger_id, creds[1])
        if ok:
            return None
        LOG.warning("refused charger %s: %s", charger_id, "bad password" if creds else "no Basic auth")
        response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "Basic auth with the charger's password\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="Electra OCPP", charset="UTF-8"'
        return response

    def _admit_control(self, connection: ServerConnection, headers: Headers) -> Response | None:
        given = headers.get("Authorization", "")
        expected = f"Bearer {self.control_token}" if self.control_token else None
        if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "control needs the operator's bearer token\n")
        if CONTROL_SUBPROTOCOL not in headers.get("Sec-WebSocket-Protocol", ""):
            return connection.respond(http.HTTPStatus.BAD_REQUEST, f"offer subprotocol {CONTROL_SUBPROTOCOL}\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        if connection.subprotocol == CONTROL_SUBPROTOCOL:
            from electra.ocpp.control import serve_control

            await serve_control(self, connection)
            return
        from electra.ocpp.v16.handlers import CentralSystemV16
        from electra.ocpp.v201.handlers import CentralSystemV201

        charger_id = connection.request.path.split("?", 1)[0][len(PATH_PREFIX) :]  # type: ignore[union-attr]
        version = connection.subprotocol or ""
        admission = await asyncio.to_thread(self.directory.admission, charger_id)
        self.store.meter.know_device(charger_id, admission.device)
        now = self.clock()
        live = ChargerLive(charger_id, version, admission.token_id, last_seen=now, connected_at=now)
        previous = self.live.get(charger_id)
        self.live[charger_id] = live
        if previous is not None and previous.cp is not None:
            # A charger has one connection: the new one wins (the old one is a half-open leftover).
            LOG.info("charger %s reconnected; closing its previous connection", charger_id)
            await previous.cp._connection.close(1000, "replaced by a new connection")
        ctx = ConnectionContext(self, live)
        cp: Any = CentralSystemV201(ctx, connection) if version == "ocpp2.0.1" else CentralSystemV16(ctx, connection)
        live.cp = cp
        try:
            await cp.start()
        except ConnectionClosed:
            LOG.info("charger %s disconnected", charger_id)
        finally:
            if self.live.get(charger_id) is live:
                del self.live[charger_id]


def load_tls(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # OCPP security profile 2: TLS 1.2 or above
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        from electra.errors import ConfigError

        raise ConfigError(f"cannot load the TLS certificate {cert}: {exc}", "check ELECTRA_OCPP_TLS_CERT/_KEY") from exc
    return ctx


async def run_forever(system: CentralSystem) -> None:
    await system.start()
    try:
        await asyncio.Future()
    finally:
        await system.stop()
