"""What every simulated charger does, whatever OCPP version it speaks.

A charger owns: connectors with an integer Wh meter register each, a configuration, a queue of
transaction messages, the connection loop (connect, boot, heartbeat, replay the queue) and the
sessions it ran. The version classes in :mod:`electra.sim.charger` turn its decisions into OCPP
1.6J or 2.0.1 messages and answer the central system's calls.

Delivery of transaction messages is at-least-once, in order: they go through one FIFO queue with
the timestamps of the moment they happened, and the head of the queue is sent again until the
central system answers it (a lost connection keeps it at the head; a CallError is retried
``TransactionMessageAttempts`` times and then dropped and recorded as an error).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import ssl as ssl_lib
import uuid
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from ocpp.exceptions import OCPPError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from electra.domain.station import check_charger_id
from electra.errors import ElectraError, InvalidInput
from electra.metering.keys import SECP256K1
from electra.metering.ocmf import Identification, OcmfReading, OcmfSigner, build_ocmf, format_kwh
from electra.sim.clock import SimClock

LOG = logging.getLogger("electra.sim")
WMS_PER_WH = 3_600_000  # watt-milliseconds in a watt-hour
SIM_VENDOR_ID = "org.electra.sim"
MAX_FRAME_BYTES = 64 * 1024
VOLTAGE_V = 230


def _read_outcome(task: asyncio.Future[Any]) -> None:
    """Marks a given-up call's outcome as read (asyncio logs an exception nobody read)."""
    if not task.cancelled() and task.exception() is not None:
        LOG.debug("a call given up on ended with %r", task.exception())


class ChargerOffline(ElectraError):
    """The simulated charger has no connection to the central system right now."""


class MeterFault(Enum):
    """What a faulty or forged meter does to one signed record (:meth:`SimCharger.meter_fault`)."""

    TAMPER = "tamper"  # the signed value is changed after signing: the signature no longer holds
    SKIP_PAGINATION = "skip_pagination"  # the meter's record counter skips one number
    WRONG_KEY = "wrong_key"  # another key signs the record
    UNSIGNED = "unsigned"  # the reading goes out without its signed record
    METER_SERIAL = "meter_serial"  # the record names another meter
    VALUE = "value"  # the record signs 1 Wh more than the reading sent with it


@dataclass(frozen=True)
class ChargerIdentity:
    """A simulated charger's fixed facts. ``device_key`` is its 32-byte secp256k1 private key.

    Its meters sign with the device key unless ``meter_key`` is given: then with that key on
    ``meter_curve`` (e.g. a secp256r1 key, as a certified meter has), which the central system must
    have registered for the charger (``electra station meter-key``).
    """

    charger_id: str
    device_key: bytes = field(repr=False)
    connectors: int = 1
    max_power_w: int = 22_000
    current_type: str = "AC"
    vendor: str = "Electra"
    model: str = "SimCharger"
    firmware: str = "sim-1.0"
    phases: int = 3
    meter_key: bytes | None = field(default=None, repr=False)
    meter_curve: str = SECP256K1

    def __post_init__(self) -> None:
        check_charger_id(self.charger_id)
        if self.connectors < 1:
            raise InvalidInput(f"a charger needs a connector, got {self.connectors}", "give connectors >= 1")
        if self.max_power_w <= 0:
            raise InvalidInput(f"invalid max power {self.max_power_w} W", "give the rated power in W")


@dataclass
class SimTransaction:
    """One charging session as the charger sees it."""

    local_id: str  # charger-generated UUID; the 2.0.1 transactionId
    connector_id: int
    id_tag: str
    remote: bool
    meter_start_wh: int
    started_ms: int
    demand_wh: int | None = None  # what the vehicle still takes; None: until stopped
    vehicle_max_power_w: int | None = None
    remote_start_id: int | None = None
    csms_id: int | None = None  # 1.6: assigned by the central system in StartTransaction.conf
    seq_no: int = 0  # 2.0.1: next TransactionEvent seqNo
    delivered_wh: int = 0  # energy that flowed (a faulty register may say otherwise)
    stopped_ms: int | None = None
    meter_stop_wh: int | None = None
    stop_reason: str | None = None
    start_acked: bool = False
    stop_acked: bool = False
    deauthorized: bool = False
    signed: list[tuple[int, int, str, str | None]] = field(default_factory=list)  # (ms, wh, TX, OCMF or None)

    @property
    def energy_wh(self) -> int:
        """Energy by the register (meter_stop - meter_start), what the central system bills."""
        end = self.meter_stop_wh if self.meter_stop_wh is not None else self.meter_start_wh + self.delivered_wh
        return end - self.meter_start_wh

    @property
    def completed(self) -> bool:
        return self.stopped_ms is not None and self.stop_acked

    def next_seq(self) -> int:
        n = self.seq_no
        self.seq_no += 1
        return n


@dataclass
class Connector:
    connector_id: int
    status: str = "Available"
    error_code: str = "NoError"
    register_wh: int = 0
    residual_wms: int = 0  # energy below one Wh, carried to the next tick
    last_tick_ms: int = 0
    tx: SimTransaction | None = None
    pagination: int = 0  # the connector's meter counts its records: T1, T2, ...
    meter_faults: list[tuple[MeterFault, str | None]] = field(default_factory=list)  # one-shot, next record first
    default_cap_w: int | None = None  # TxDefaultProfile
    tx_cap_w: int | None = None  # TxProfile, cleared when the transaction ends
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class QueuedMessage:
    """A transaction message waiting for its answer; ``build`` makes the request at send time."""

    action: str
    build: Callable[[QueuedMessage], Any | None]
    on_result: Callable[[Any], None] | None
    created_ms: int
    offline: bool
    attempts: int = 0
    sends: int = 0


@dataclass(frozen=True)
class ConfigKey:
    default: str
    readonly: bool = False
    kind: str = "int"  # int | bool | str


CONFIG_KEYS: dict[str, ConfigKey] = {
    "HeartbeatInterval": ConfigKey("300"),
    "MeterValueSampleInterval": ConfigKey("60"),
    "ClockAlignedDataInterval": ConfigKey("0"),
    "MeterValuesSampledData": ConfigKey("Energy.Active.Import.Register", kind="str"),
    "ConnectionTimeOut": ConfigKey("60"),
    "TransactionMessageAttempts": ConfigKey("3"),
    "TransactionMessageRetryInterval": ConfigKey("10"),
    "AuthorizeRemoteTxRequests": ConfigKey("false", kind="bool"),
    "LocalPreAuthorize": ConfigKey("false", kind="bool"),
    "LocalAuthorizeOffline": ConfigKey("true", kind="bool"),
    "StopTransactionOnInvalidId": ConfigKey("true", kind="bool"),
    "NumberOfConnectors": ConfigKey("1", readonly=True),
    "SupportedFeatureProfiles": ConfigKey("Core,RemoteTrigger,SmartCharging", readonly=True, kind="str"),
}


def check_config_value(key: str, value: str) -> bool:
    kind = CONFIG_KEYS[key].kind
    if kind == "int":
        return value.isdigit()
    if kind == "bool":
        return value.lower() in ("true", "false")
    return True


def profile_limit_w(schedule: dict[str, Any], phases: int) -> int:
    """The power limit (W) of a charging schedule's first period; amperes are turned into watts."""
    periods = schedule.get("charging_schedule_period") or []
    if not periods:
        raise InvalidInput("a charging schedule without periods", "give at least one chargingSchedulePeriod")
    first = min(periods, key=lambda p: p.get("start_period", 0))
    try:
        limit = Decimal(str(first["limit"]))
    except (KeyError, InvalidOperation) as exc:
        raise InvalidInput("a charging schedule period without a numeric limit", "give limit") from exc
    if limit < 0:
        raise InvalidInput(f"negative charging limit {limit}", "give a limit >= 0")
    if schedule.get("charging_rate_unit") == "A":
        limit = limit * VOLTAGE_V * int(first.get("number_phases") or phases)
    return int(limit)


class SimCharger(ABC):
    """The version-independent simulated charger. Use :class:`SimChargerV16` or :class:`SimChargerV201`."""

    version = ""
    subprotocol = ""

    def __init__(
        self,
        identity: ChargerIdentity,
        url: str,
        clock: SimClock,
        *,
        password: str | None = None,
        ssl: ssl_lib.SSLContext | None = None,
        response_timeout_s: float = 10.0,
        config: dict[str, str] | None = None,
    ) -> None:
        self.identity = identity
        self.charger_id = identity.charger_id
        self.url = charger_url(url, identity.charger_id)
        self.clock = clock
        self.password = password
        self.ssl = ssl
        if self.url.startswith("wss://") and ssl is None:
            self.ssl = ssl_lib.create_default_context()
        self.response_timeout_s = response_timeout_s
        # One meter per connector (serial "<charger id>-MTR-<connector>"), each with its own record
        # counter, all signing with the same key: the device key, or the meter key.
        self.meters = {
            i: OcmfSigner(
                identity.meter_key if identity.meter_key is not None else identity.device_key,
                gateway_serial=identity.charger_id,
                meter_serial=f"{identity.charger_id}-MTR-{i}",
                gateway_version=identity.firmware,
                meter_vendor=identity.vendor,
                curve=identity.meter_curve if identity.meter_key is not None else SECP256K1,
            )
            for i in range(1, identity.connectors + 1)
        }
        self.signer = self.meters[1]
        self.config = {k: v.default for k, v in CONFIG_KEYS.items()}
        self.config["NumberOfConnectors"] = str(identity.connectors)
        for k, v in (config or {}).items():
            if k not in CONFIG_KEYS or not check_config_value(k, v):
                raise InvalidInput(f"invalid simulator setting {k}={v!r}", f"use one of {', '.join(CONFIG_KEYS)}")
            self.config[k] = v
        now = clock.now_ms()
        self.connectors = {
            i: Connector(i, last_tick_ms=now) for i in range(1, identity.connectors + 1)
        }  # ids 1..N; 2.0.1 EVSE ids
        self.station_cap_w: int | None = None
        self.plugged: dict[int, tuple[int | None, int | None]] = {}  # connector -> (demand Wh, max power W)
        self.sessions: list[SimTransaction] = []
        self.sessions_rejected = 0
        self.sent: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.errors: list[str] = []
        self.boots = 0
        self.connects = 0
        self.connect_failures = 0
        self.registration = "Unknown"
        self.booted = asyncio.Event()
        self._queue: deque[QueuedMessage] = deque()
        self._queue_event = asyncio.Event()
        self._queue_idle = asyncio.Event()
        self._queue_idle.set()
        self._online = asyncio.Event()
        self._online.set()
        self._disconnect = asyncio.Event()
        self._gone = asyncio.Event()  # set when the current connection has ended
        self._hb_changed = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._connecting: asyncio.Future[ClientConnection] | None = None
        self._cp: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._boot_reason = "PowerUp"
        self._rebooting = False
        self._reset_when_idle = False
        self._send_lock = asyncio.Lock()

    # --- settings ---------------------------------------------------------------------------
    def config_int(self, key: str) -> int:
        return int(self.config[key])

    def config_bool(self, key: str) -> bool:
        return self.config[key].lower() == "true"

    def set_config(self, key: str, value: str) -> str:
        """Changes a setting; returns Accepted, Rejected or NotSupported (OCPP 1.6's vocabulary)."""
        spec = CONFIG_KEYS.get(key)
        if spec is None:
            return "NotSupported"
        if spec.readonly or not check_config_value(key, value):
            return "Rejected"
        self.config[key] = value.lower() if spec.kind == "bool" else value
        if key == "HeartbeatInterval":
            self._hb_changed.set()
        if key == "MeterValueSampleInterval":
            for c in self.connectors.values():
                c.wake.set()
        return "Accepted"

    @property
    def heartbeat_interval_s(self) -> int:
        return self.config_int("HeartbeatInterval")

    @property
    def connected(self) -> bool:
        return self._cp is not None

    @property
    def online(self) -> bool:
        return self.connected and self.booted.is_set()

    @property
    def queued(self) -> list[QueuedMessage]:
        return list(self._queue)

    # --- lifecycle --------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{self.charger_id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, ConnectionClosed | ChargerOffline):
            self.error(f"{task.get_name()} failed: {exc!r}")

    def error(self, text: str) -> None:
        LOG.warning("%s: %s", self.charger_id, text)
        self.errors.append(text)

    async def run(self) -> None:
        """Connects, boots and serves until :meth:`stop`; reconnects after every lost connection."""
        backoff = 0.05
        while not self._stopping:
            await self._online.wait()
            if self._stopping:
                break
            attempt = asyncio.ensure_future(
                connect(
                    self.url,
                    subprotocols=[self.subprotocol],  # type: ignore[list-item]
                    additional_headers=self._headers(),
                    ssl=self.ssl,
                    open_timeout=self.response_timeout_s,
                    max_size=MAX_FRAME_BYTES,
                )
            )
            self._connecting = attempt
            try:
                ws = await attempt
            except asyncio.CancelledError:
                if attempt.cancelled() and self._stopping:
                    break  # stop() gave up the attempt; this task itself was not cancelled
                raise
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.connect_failures += 1
                if self.connect_failures <= 3 or self.connect_failures % 50 == 0:
                    self.error(f"cannot connect to {self.url}: {exc}")
                await self.clock.wait(self._stopped, self.clock.to_sim_ms(backoff))
                backoff = min(backoff * 2, 2.0)
                continue
            finally:
                self._connecting = None
            backoff = 0.05
            try:
                await self._serve(ws)
            finally:
                await ws.close()
            if self._rebooting:
                self._rebooting = False
                await asyncio.sleep(0.01)  # the "reboot"

    def _headers(self) -> dict[str, str]:
        if self.password is None:
            return {}
        token = base64.b64encode(f"{self.charger_id}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def _serve(self, ws: ClientConnection) -> None:
        if ws.subprotocol != self.subprotocol:
            self.error(f"the central system chose subprotocol {ws.subprotocol!r}, not {self.subprotocol}")
            return
        self.connects += 1
        self._disconnect = asyncio.Event()
        self._gone = asyncio.Event()
        self._cp = self.protocol(ws)
        self.booted.clear()
        tasks = [
            asyncio.create_task(self._cp.start(), name=f"{self.charger_id}:reader"),
            asyncio.create_task(self._connected(), name=f"{self.charger_id}:main"),
            asyncio.create_task(self._disconnect.wait(), name=f"{self.charger_id}:disconnect"),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._cp = None
            self._gone.set()
            self.booted.clear()
            for t in tasks:
                t.cancel()
            for t, result in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True), strict=True):
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError | ConnectionClosed | ChargerOffline
                ):
                    self.error(f"{t.get_name()} failed: {result!r}")

    async def _connected(self) -> None:
        await self._boot()
        for c in self.connectors.values():
            self.spawn(self._send_status(c), "status")
        self._boot_reason = "PowerUp"
        drain = asyncio.create_task(self._drain(), name=f"{self.charger_id}:drain")
        try:
            await self._heartbeats()
        finally:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, ChargerOffline):
                await drain

    async def _boot(self) -> None:
        while True:
            self.boots += 1
            try:
                status, interval = await self.send_boot(self._boot_reason)
            except OCPPError as exc:
                self.error(f"BootNotification answered with {exc!r}")
                status, interval = "Rejected", 0
            except TimeoutError:
                continue
            self.registration = status
            if status == "Accepted":
                if interval > 0:
                    self.config["HeartbeatInterval"] = str(interval)
                self.booted.set()
                return
            await self.clock.sleep(interval if interval > 0 else 30)

    async def _heartbeats(self) -> None:
        while True:
            self._hb_changed.clear()
            if await self.clock.wait(self._hb_changed, self.heartbeat_interval_s * 1000):
                continue
            try:
                await self.send_heartbeat()
            except (OCPPError, TimeoutError) as exc:
                self.error(f"Heartbeat failed: {exc!r}")

    async def stop(self, end_sessions: bool = True, flush_timeout_s: float = 5.0) -> None:
        """Ends open sessions (reason Local), waits up to ``flush_timeout_s`` for the queue, disconnects."""
        if end_sessions:
            for c in self.connectors.values():
                if c.tx is not None:
                    self.stop_session(c.connector_id, "Local")
        if flush_timeout_s > 0 and self._queue:
            with contextlib.suppress(TimeoutError):  # what is still queued then is reported as queued
                await asyncio.wait_for(self._flushed_online(), flush_timeout_s)
        self._stopping = True
        self._stopped.set()
        self._online.set()
        self._disconnect.set()
        if self._connecting is not None:
            self._connecting.cancel()
        for c in self.connectors.values():
            if c.task is not None:
                c.task.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _flushed_online(self) -> None:
        await self.booted.wait()
        await self._queue_idle.wait()

    def restartable(self) -> None:
        """After :meth:`stop`, lets :meth:`run` serve again (the next round of a fleet)."""
        self._stopping = False
        self._stopped.clear()

    async def wait_booted(self, timeout_s: float = 10.0) -> None:
        await asyncio.wait_for(self.booted.wait(), timeout_s)

    async def wait_flushed(self, timeout_s: float = 10.0) -> None:
        """Waits until every queued transaction message has been answered."""
        await asyncio.wait_for(self._queue_idle.wait(), timeout_s)

    # --- offline periods --------------------------------------------------------------------
    def go_offline(self, sim_s: float | None = None) -> None:
        """Drops the connection; stays offline for ``sim_s`` simulated seconds (None: until go_online)."""
        self._online.clear()
        self._disconnect.set()
        if sim_s is not None:
            self.spawn(self._online_after(sim_s), "offline")

    async def _online_after(self, sim_s: float) -> None:
        await self.clock.sleep(sim_s)
        self.go_online()

    def go_online(self) -> None:
        self._online.set()

    def reboot(self, reason: str = "RemoteReset") -> None:
        """Disconnects and reconnects at once, booting again with ``reason``."""
        self._boot_reason = reason
        self._rebooting = True
        self._disconnect.set()

    # --- calls to the central system --------------------------------------------------------
    @abstractmethod
    def protocol(self, ws: ClientConnection) -> Any:
        """The `ocpp` library's ChargePoint for this connection, with this version's handlers."""

    async def call(self, request: Any) -> Any:
        cp = self._cp
        if cp is None:
            raise ChargerOffline(f"{self.charger_id} is offline", "wait for the connection")
        action = type(request).__name__
        # One call at a time, in the order asked for (the library validates in a thread first,
        # which would otherwise let a later call overtake an earlier one).
        async with self._send_lock:
            if self._cp is not cp:
                raise ChargerOffline(f"{self.charger_id} lost its connection", "wait for the reconnect")
            self.sent[action] += 1
            # The library waits for an answer until its timeout even when the socket has closed;
            # a call in flight ends as soon as the connection does.
            answer = asyncio.ensure_future(cp.call(request, suppress=False))
            # However it ends, its outcome is read: when this call is given up on (the connection
            # went, or the caller was cancelled) the library may still end it with its own error.
            answer.add_done_callback(_read_outcome)
            gone = asyncio.ensure_future(self._gone.wait())
            try:
                await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()
                given_up = not answer.done()
                if given_up:
                    answer.cancel()
            if given_up:
                raise ChargerOffline(f"{self.charger_id} lost its connection during {action}", "it is resent if queued")
            result = answer.result()
        self.answered[action] += 1
        return result

    def notify(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """A best-effort message (status, triggered messages): sent if online, else dropped."""
        if not self.online:
            coro.close()
            return
        self.spawn(coro, name)

    def enqueue(
        self,
        action: str,
        build: Callable[[QueuedMessage], Any | None],
        on_result: Callable[[Any], None] | None = None,
        at_ms: int | None = None,
    ) -> QueuedMessage:
        msg = QueuedMessage(action, build, on_result, self.clock.now_ms() if at_ms is None else at_ms, not self.online)
        self._queue.append(msg)
        self._queue_idle.clear()
        self._queue_event.set()
        return msg

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # status notifications of the boot go first
        while True:
            if not self._queue:
                self._queue_idle.set()
                self._queue_event.clear()
                await self._queue_event.wait()
                continue
            msg = self._queue[0]
            request = msg.build(msg)
            if request is None:
                self._queue.popleft()
                self.error(f"dropped {msg.action}: its transaction was never accepted")
                continue
            msg.sends += 1
            try:
                result = await self.call(request)
            except OCPPError as exc:
                msg.attempts += 1
                if msg.attempts >= max(1, self.config_int("TransactionMessageAttempts")):
                    self._queue.popleft()
                    self.error(f"dropped {msg.action} after {msg.attempts} errors: {exc!r}")
                else:
                    await self.clock.sleep(self.config_int("TransactionMessageRetryInterval") * msg.attempts)
                continue
            except TimeoutError:
                continue  # no answer: send the same message again
            self._queue.popleft()
            if msg.on_result is not None:
                msg.on_result(result)

    # --- metering -----------------------------------------------------------------------------
    def power_w(self, conn: Connector) -> int:
        caps = [self.identity.max_power_w]
        # A TxProfile overrules the TxDefaultProfile for its transaction (OCPP 1.6 3.13.2, 2.0.1 K01);
        # the charger's max profile caps both.
        tx_or_default = conn.tx_cap_w if conn.tx_cap_w is not None else conn.default_cap_w
        caps += [c for c in (self.station_cap_w, tx_or_default) if c is not None]
        if conn.tx is not None and conn.tx.vehicle_max_power_w is not None:
            caps.append(conn.tx.vehicle_max_power_w)
        return max(0, min(caps))

    def advance(self, conn: Connector, now_ms: int | None = None) -> None:
        """Moves the register forward to ``now_ms`` at the current power (integer Wh, remainder kept)."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        dt = now - conn.last_tick_ms
        if dt <= 0:
            return
        conn.last_tick_ms = now
        tx = conn.tx
        if tx is None or conn.status != "Charging":
            return
        wms = conn.residual_wms + self.power_w(conn) * dt
        add, conn.residual_wms = divmod(wms, WMS_PER_WH)
        if tx.demand_wh is not None and tx.delivered_wh + add >= tx.demand_wh:
            add, conn.residual_wms = tx.demand_wh - tx.delivered_wh, 0
        conn.register_wh += add
        tx.delivered_wh += add

    def limit_power(self, connector_id: int, cap_w: int | None, purpose: str) -> None:
        """Applies a charging profile's limit. connector 0: the whole charger (or every connector)."""
        now = self.clock.now_ms()
        for c in self.connectors.values():
            self.advance(c, now)
        targets = list(self.connectors.values()) if connector_id == 0 else [self.connectors[connector_id]]
        if purpose in ("ChargePointMaxProfile", "ChargingStationMaxProfile"):
            self.station_cap_w = cap_w
        elif purpose == "TxProfile":
            for c in targets:
                c.tx_cap_w = cap_w
        else:
            for c in targets:
                c.default_cap_w = cap_w
        for c in self.connectors.values():
            c.wake.set()

    def clear_limits(self) -> None:
        now = self.clock.now_ms()
        for c in self.connectors.values():
            self.advance(c, now)
            c.default_cap_w = c.tx_cap_w = None
            c.wake.set()
        self.station_cap_w = None

    def sign(self, conn: Connector, tx: SimTransaction, reason: str, at_ms: int) -> str | None:
        """The OCMF record of the register now, by the connector's meter; kept with the transaction.
        None when a meter fault leaves the reading unsigned."""
        fault = self._take_meter_fault(conn, reason)
        if fault is MeterFault.UNSIGNED:
            tx.signed.append((at_ms, conn.register_wh, reason, None))
            return None
        conn.pagination += 2 if fault is MeterFault.SKIP_PAGINATION else 1
        meter = self.meters[conn.connector_id]
        if fault is MeterFault.WRONG_KEY:
            forged = hashlib.sha256(b"electra-sim-forged-meter:" + self.charger_id.encode()).digest()
            meter = OcmfSigner(forged, meter.gateway_serial, meter.meter_serial, curve=meter.curve)
        elif fault is MeterFault.METER_SERIAL:
            meter = OcmfSigner(
                self._meter_private_key, meter.gateway_serial, meter.meter_serial + "-B", curve=meter.curve
            )
        signed_wh = conn.register_wh + 1 if fault is MeterFault.VALUE else conn.register_wh
        flags = ("OCPP_RS",) if tx.remote else ("RFID_PLAIN", "OCPP_AUTH")
        text = build_ocmf(
            meter,
            [OcmfReading(at_ms, signed_wh, reason, current_type=self.identity.current_type)],
            pagination=conn.pagination,
            charge_point_id=self.charger_id,
            identification=Identification(tx.id_tag, flags),
        )
        if fault is MeterFault.TAMPER:
            rv = f'"RV":{format_kwh(signed_wh)},'
            text = text.replace(rv, f'"RV":{format_kwh(signed_wh + 1)},', 1)
        tx.signed.append((at_ms, conn.register_wh, reason, text))
        return text

    @property
    def _meter_private_key(self) -> bytes:
        return self.identity.meter_key if self.identity.meter_key is not None else self.identity.device_key

    def meter_fault(self, connector_id: int, fault: MeterFault, reason: str | None = None) -> None:
        """Fault injection: the connector's next signed record (with ``reason``, e.g. "E", the next
        record with that TX) is made ``fault``-y. Faults queue up and each is used once."""
        self.connectors[connector_id].meter_faults.append((fault, reason))

    @staticmethod
    def _take_meter_fault(conn: Connector, reason: str) -> MeterFault | None:
        for i, (fault, wanted) in enumerate(conn.meter_faults):
            if wanted is None or wanted == reason:
                del conn.meter_faults[i]
                return fault
        return None

    def meter_jump_back(self, connector_id: int, wh: int) -> int:
        """Fault: the register jumps back by ``wh`` (not below 0). Returns the new register value."""
        conn = self.connectors[connector_id]
        self.advance(conn)
        conn.register_wh = max(0, conn.register_wh - wh)
        return conn.register_wh

    # --- connectors and sessions -------------------------------------------------------------
    def set_status(self, conn: Connector, status: str, error_code: str = "NoError") -> None:
        self.advance(conn)
        conn.status, conn.error_code = status, error_code
        self.notify(self._send_status(conn), "status")

    async def _send_status(self, conn: Connector) -> None:
        await self.send_status(conn)

    def free_connector(self, connector_id: int | None) -> Connector | None:
        """The connector a remote start would use: the one asked for, else one with a vehicle waiting."""
        if connector_id is not None and connector_id > 0:
            c = self.connectors.get(connector_id)
            return c if c is not None and c.tx is None and c.status in ("Available", "Preparing") else None
        free = [c for c in self.connectors.values() if c.tx is None and c.status in ("Available", "Preparing")]
        waiting = [c for c in free if c.connector_id in self.plugged]
        candidates = waiting or free
        return candidates[0] if candidates else None

    def plug_in(self, connector_id: int, demand_wh: int | None = None, max_power_w: int | None = None) -> None:
        """A vehicle is plugged in and waits for a remote start (a driver using an app)."""
        conn = self.connectors[connector_id]
        if conn.tx is not None or conn.status != "Available":
            raise InvalidInput(f"connector {connector_id} of {self.charger_id} is {conn.status}", "use a free one")
        self.plugged[connector_id] = (demand_wh, max_power_w)
        self.set_status(conn, "Preparing")

    async def remote_start(
        self, connector_id: int, id_tag: str, *, cap_w: int | None = None, remote_start_id: int | None = None
    ) -> SimTransaction | None:
        """The central system asked for a start: with the plugged vehicle's demand, if one waits."""
        if cap_w is not None:
            self.limit_power(connector_id, cap_w, "TxProfile")
        demand_wh, max_power_w = self.plugged.pop(connector_id, (None, None))
        return await self.start_session(
            connector_id,
            id_tag,
            demand_wh=demand_wh,
            vehicle_max_power_w=max_power_w,
            remote=True,
            remote_start_id=remote_start_id,
            authorize=self.config_bool("AuthorizeRemoteTxRequests"),
        )

    async def triggered_boot(self) -> None:
        status, interval = await self.send_boot("Triggered")
        self.registration = status
        if status == "Accepted" and interval > 0:
            self.set_config("HeartbeatInterval", str(interval))

    async def start_session(
        self,
        connector_id: int,
        id_tag: str,
        *,
        demand_wh: int | None = None,
        vehicle_max_power_w: int | None = None,
        remote: bool = False,
        remote_start_id: int | None = None,
        authorize: bool = True,
    ) -> SimTransaction | None:
        """A vehicle plugs in and the driver presents ``id_tag`` (or the CSMS started it remotely).

        Authorizes first (offline: allowed if LocalAuthorizeOffline), then starts the transaction.
        Returns the transaction, or None if the start was refused.
        """
        conn = self.connectors.get(connector_id)
        if conn is None:
            raise InvalidInput(f"{self.charger_id} has no connector {connector_id}", "use 1..N")
        if conn.tx is not None or conn.status not in ("Available", "Preparing"):
            return None
        self.set_status(conn, "Preparing")
        if authorize:
            status = await self.authorize(id_tag)
            if status is None and not self.config_bool("LocalAuthorizeOffline"):
                status = "Offline"
            if status not in (None, "Accepted"):
                self.sessions_rejected += 1
                self.set_status(conn, "Finishing")
                self.set_status(conn, "Available")
                return None
            if conn.tx is not None or conn.status != "Preparing":
                return None  # faulted or taken while waiting for the answer
        now = self.clock.now_ms()
        self.advance(conn, now)
        tx = SimTransaction(
            local_id=str(uuid.uuid4()),
            connector_id=connector_id,
            id_tag=id_tag,
            remote=remote,
            meter_start_wh=conn.register_wh,
            started_ms=now,
            demand_wh=demand_wh,
            vehicle_max_power_w=vehicle_max_power_w,
            remote_start_id=remote_start_id,
        )
        conn.tx, conn.residual_wms, conn.last_tick_ms = tx, 0, now
        self.sessions.append(tx)
        self.queue_started(conn, tx, self.sign(conn, tx, "B", now))
        self.set_status(conn, "Charging")
        conn.wake.clear()
        conn.task = self.spawn(self._charge(conn, tx), "charge")
        return tx

    async def authorize(self, id_tag: str) -> str | None:
        """The CSMS's answer for ``id_tag``; None if offline or no answer."""
        if not self.online:
            return None
        try:
            return await self.send_authorize(id_tag)
        except (TimeoutError, ConnectionClosed, ChargerOffline):
            return None
        except OCPPError as exc:
            self.error(f"Authorize answered with {exc!r}")
            return "Invalid"

    async def _charge(self, conn: Connector, tx: SimTransaction) -> None:
        last_sample = tx.started_ms
        while conn.tx is tx:
            now = self.clock.now_ms()
            interval_ms = self.config_int("MeterValueSampleInterval") * 1000
            wait = last_sample + interval_ms - now if interval_ms > 0 else 3_600_000
            power = self.power_w(conn)
            if tx.demand_wh is not None and power > 0:
                left_wms = (tx.demand_wh - tx.delivered_wh) * WMS_PER_WH - conn.residual_wms
                wait = min(wait, -(-left_wms // power))
            conn.wake.clear()
            await self.clock.wait(conn.wake, wait)
            if conn.tx is not tx:
                return
            now = self.clock.now_ms()
            self.advance(conn, now)
            if tx.demand_wh is not None and tx.delivered_wh >= tx.demand_wh:
                conn.task = None
                self.stop_session(conn.connector_id, "EVDisconnected")
                return
            if interval_ms > 0 and now - last_sample >= interval_ms:
                last_sample = now
                self.queue_sample(conn, tx, self.sign(conn, tx, "C", now))

    def stop_session(
        self, connector_id: int, reason: str = "Local", keep_status: bool = False
    ) -> SimTransaction | None:
        """Ends the connector's transaction now. ``reason`` uses OCPP 1.6's Reason vocabulary."""
        conn = self.connectors[connector_id]
        tx = conn.tx
        if tx is None:
            return None
        if conn.task is not None and conn.task is not asyncio.current_task():
            conn.task.cancel()
        conn.task = None
        now = self.clock.now_ms()
        self.advance(conn, now)
        tx.stopped_ms, tx.meter_stop_wh, tx.stop_reason = now, conn.register_wh, reason
        self.queue_ended(conn, tx, self.sign(conn, tx, "E", now))
        conn.tx, conn.tx_cap_w = None, None
        if not keep_status:
            self.set_status(conn, "Finishing")
            self.set_status(conn, "Available")
        if self._reset_when_idle and all(c.tx is None for c in self.connectors.values()):
            self._reset_when_idle = False
            self.spawn(self._reboot_when_flushed("RemoteReset"), "reset")
        return tx

    def transaction(self, *, local_id: str | None = None, csms_id: int | None = None) -> SimTransaction | None:
        for c in self.connectors.values():
            tx = c.tx
            if tx is not None and (tx.local_id == local_id or (csms_id is not None and tx.csms_id == csms_id)):
                return tx
        return None

    def deauthorize(self, tx: SimTransaction) -> None:
        """The CSMS refused the id tag after the start (e.g. on offline replay): stop if still running."""
        tx.deauthorized = True
        conn = self.connectors[tx.connector_id]
        if conn.tx is tx and self.config_bool("StopTransactionOnInvalidId"):
            self.stop_session(tx.connector_id, "DeAuthorized")

    # --- faults -------------------------------------------------------------------------------
    def fault(self, connector_id: int, error_code: str = "GroundFailure", stop_session: bool = True) -> None:
        """The connector goes Faulted (StatusNotification with ``error_code``); optionally ends its session."""
        conn = self.connectors[connector_id]
        self.advance(conn)
        if stop_session and conn.tx is not None:
            self.stop_session(connector_id, "Other", keep_status=True)
        self.set_status(conn, "Faulted", error_code)

    def clear_fault(self, connector_id: int) -> None:
        conn = self.connectors[connector_id]
        if conn.status == "Faulted":
            self.set_status(conn, "Charging" if conn.tx is not None else "Available")
            conn.wake.set()

    # --- resets ---------------------------------------------------------------------------------
    def reset(self, hard: bool, when_idle: bool = False) -> bool:
        """Stops sessions and reboots. ``when_idle``: wait for running sessions to end; True if deferred."""
        if when_idle and any(c.tx is not None for c in self.connectors.values()):
            self._reset_when_idle = True
            return True
        for c in self.connectors.values():
            if c.tx is not None:
                self.stop_session(c.connector_id, "HardReset" if hard else "SoftReset")
        self.spawn(self._reboot_when_flushed("RemoteReset"), "reset")
        return False

    async def _reboot_when_flushed(self, reason: str) -> None:
        with contextlib.suppress(TimeoutError):
            await self.wait_flushed(self.response_timeout_s)
        self.reboot(reason)

    # --- version-specific messages (the version classes implement these) --------------------
    @abstractmethod
    async def send_boot(self, reason: str) -> tuple[str, int]:
        """Sends BootNotification; returns (status, interval s)."""

    @abstractmethod
    async def send_heartbeat(self) -> None:
        """Sends Heartbeat."""

    @abstractmethod
    async def send_status(self, conn: Connector) -> None:
        """Sends the connector's StatusNotification."""

    @abstractmethod
    async def send_authorize(self, id_tag: str) -> str:
        """Sends Authorize; returns the id token's status."""

    @abstractmethod
    def queue_started(self, conn: Connector, tx: SimTransaction, ocmf: str | None) -> None:
        """Queues the start of ``tx`` with its signed begin reading."""

    @abstractmethod
    def queue_sample(self, conn: Connector, tx: SimTransaction, ocmf: str | None) -> None:
        """Queues a periodic reading of ``tx``."""

    @abstractmethod
    def queue_ended(self, conn: Connector, tx: SimTransaction, ocmf: str | None) -> None:
        """Queues the end of ``tx`` with its signed end reading."""

    @abstractmethod
    def triggered(self, message: str, connector_id: int | None) -> Callable[[], Coroutine[Any, Any, Any]] | None:
        """What sends the message a TriggerMessage asked for; None if not implemented."""

    @abstractmethod
    async def data_transfer(self, vendor_id: str, message_id: str | None = None, data: Any = None) -> tuple[str, Any]:
        """Sends a DataTransfer; returns (status, data)."""

    # --- summaries ------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "charger_id": self.charger_id,
            "version": self.version,
            "boots": self.boots,
            "connects": self.connects,
            "sessions_started": len(self.sessions),
            "sessions_completed": sum(1 for s in self.sessions if s.completed),
            "sessions_rejected": self.sessions_rejected,
            "energy_wh": sum(s.energy_wh for s in self.sessions),
            "messages_sent": sum(self.sent.values()),
            "queued": len(self._queue),
            "errors": len(self.errors),
        }


def charger_url(base: str, charger_id: str) -> str:
    """``ws://HOST:PORT`` (or ``.../ocpp/``) plus the charger's path ``/ocpp/{charger_id}``."""
    if not base.startswith(("ws://", "wss://")):
        raise InvalidInput(f"invalid CSMS URL {base!r}", "give ws://HOST:PORT or wss://HOST:PORT")
    root = base.rstrip("/")
    if root.endswith("/ocpp"):
        root = root[: -len("/ocpp")]
    return f"{root}/ocpp/{charger_id}"
