"""Simulated chargers speaking OCPP-J 1.6 and 2.0.1, built on the `ocpp` library's ChargePoint.

:class:`SimChargerV16` and :class:`SimChargerV201` share their engine (:mod:`electra.sim.base`):
metering, sessions, the offline queue and the connection loop. Here each version turns the
engine's events into its own messages and answers the central system's calls:

- 1.6: RemoteStart/StopTransaction, Reset, TriggerMessage, Get/ChangeConfiguration,
  SetChargingProfile, ClearChargingProfile, DataTransfer.
- 2.0.1: RequestStart/StopTransaction, Reset, TriggerMessage, Get/SetVariables,
  SetChargingProfile, ClearChargingProfile, DataTransfer.

A call whose answer leads to work (a remote start, a reset, a triggered message) answers first;
the work runs once the answer is on the wire (the library's ``@after`` hook).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.client import ClientConnection

from electra.errors import InvalidInput
from electra.metering.ocmf import Identification
from electra.sim.base import (
    CONFIG_KEYS,
    SIM_VENDOR_ID,
    ChargerIdentity,
    Connector,
    QueuedMessage,
    SimCharger,
    SimTransaction,
    profile_limit_w,
)

OCPP_LOG = logging.getLogger("electra.sim.ocpp")
ENERGY = "Energy.Active.Import.Register"
FollowUp = Callable[[], Coroutine[Any, Any, Any]]

__all__ = ["ChargerIdentity", "SimCharger", "SimChargerV16", "SimChargerV201", "make_charger"]


class _FollowUps:
    """Work an on-handler leaves to run after its answer has been sent, keyed by the call's id."""

    sim: SimCharger

    def _init_followups(self) -> None:
        self._next: dict[str, FollowUp] = {}

    def _then(self, unique_id: str, fn: FollowUp) -> None:
        self._next[unique_id] = fn

    def _run_next(self, unique_id: str) -> None:
        fn = self._next.pop(unique_id, None)
        if fn is not None:
            self.sim.spawn(fn(), "follow-up")


def _stopper(sim: SimCharger, connector_id: int, reason: str) -> FollowUp:
    async def stop() -> None:
        sim.stop_session(connector_id, reason)

    return stop


def _on_data_transfer(sim: SimCharger, vendor_id: str, message_id: str | None, data: Any) -> tuple[str, Any]:
    sim.received["DataTransfer"] += 1
    if vendor_id != SIM_VENDOR_ID:
        return "UnknownVendorId", None
    if message_id == "ping":
        return "Accepted", data if data is not None else "pong"
    return "UnknownMessageId", None


# --------------------------------------------------------------------------------------------
# OCPP 1.6J
# --------------------------------------------------------------------------------------------


class _Cp16(ChargePoint16, _FollowUps):  # type: ignore[misc]
    def __init__(self, sim: SimChargerV16, ws: ClientConnection) -> None:
        super().__init__(sim.charger_id, ws, response_timeout=sim.response_timeout_s, logger=OCPP_LOG)
        self.sim = sim
        self._init_followups()

    @on(Action16.remote_start_transaction)  # type: ignore[untyped-decorator]
    def on_remote_start(
        self, id_tag: str, call_unique_id: str, connector_id: int | None = None, charging_profile: Any = None, **kw: Any
    ) -> Any:
        sim = self.sim
        sim.received["RemoteStartTransaction"] += 1
        conn = sim.free_connector(connector_id)
        cap = None
        if conn is None:
            return result16.RemoteStartTransaction(status="Rejected")
        if charging_profile:
            try:
                cap = profile_limit_w(charging_profile["charging_schedule"], sim.identity.phases)
            except (InvalidInput, KeyError):
                return result16.RemoteStartTransaction(status="Rejected")
        self._then(call_unique_id, lambda: sim.remote_start(conn.connector_id, id_tag, cap_w=cap))
        return result16.RemoteStartTransaction(status="Accepted")

    @after(Action16.remote_start_transaction)  # type: ignore[untyped-decorator]
    def after_remote_start(self, call_unique_id: str, **kw: Any) -> None:
        self._run_next(call_unique_id)

    @on(Action16.remote_stop_transaction)  # type: ignore[untyped-decorator]
    def on_remote_stop(self, transaction_id: int, call_unique_id: str, **kw: Any) -> Any:
        self.sim.received["RemoteStopTransaction"] += 1
        tx = self.sim.transaction(csms_id=transaction_id)
        if tx is None:
            return result16.RemoteStopTransaction(status="Rejected")
        self._then(call_unique_id, _stopper(self.sim, tx.connector_id, "Remote"))
        return result16.RemoteStopTransaction(status="Accepted")

    @after(Action16.remote_stop_transaction)  # type: ignore[untyped-decorator]
    def after_remote_stop(self, call_unique_id: str, **kw: Any) -> None:
        self._run_next(call_unique_id)

    @on(Action16.reset)  # type: ignore[untyped-decorator]
    def on_reset(self, type: str, call_unique_id: str, **kw: Any) -> Any:
        self.sim.received["Reset"] += 1

        async def reset() -> None:
            self.sim.reset(hard=type == "Hard")

        self._then(call_unique_id, reset)
        return result16.Reset(status="Accepted")

    @after(Action16.reset)  # type: ignore[untyped-decorator]
    def after_reset(self, call_unique_id: str, **kw: Any) -> None:
        self._run_next(call_unique_id)

    @on(Action16.trigger_message)  # type: ignore[untyped-decorator]
    def on_trigger_message(
        self, requested_message: str, call_unique_id: str, connector_id: int | None = None, **kw: Any
    ) -> Any:
        sim = self.sim
        sim.received["TriggerMessage"] += 1
        if connector_id is not None and connector_id != 0 and connector_id not in sim.connectors:
            return result16.TriggerMessage(status="Rejected")
        fn = sim.triggered(requested_message, connector_id)
        if fn is None:
            return result16.TriggerMessage(status="NotImplemented")
        self._then(call_unique_id, fn)
        return result16.TriggerMessage(status="Accepted")

    @after(Action16.trigger_message)  # type: ignore[untyped-decorator]
    def after_trigger_message(self, call_unique_id: str, **kw: Any) -> None:
        self._run_next(call_unique_id)

    @on(Action16.get_configuration)  # type: ignore[untyped-decorator]
    def on_get_configuration(self, key: list[str] | None = None, **kw: Any) -> Any:
        sim = self.sim
        sim.received["GetConfiguration"] += 1
        keys = key or list(CONFIG_KEYS)
        known = [
            {"key": k, "readonly": CONFIG_KEYS[k].readonly, "value": sim.config[k]} for k in keys if k in sim.config
        ]
        unknown = [k for k in keys if k not in sim.config]
        return result16.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action16.change_configuration)  # type: ignore[untyped-decorator]
    def on_change_configuration(self, key: str, value: str, **kw: Any) -> Any:
        self.sim.received["ChangeConfiguration"] += 1
        return result16.ChangeConfiguration(status=self.sim.set_config(key, value))

    @on(Action16.set_charging_profile)  # type: ignore[untyped-decorator]
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any], **kw: Any) -> Any:
        sim = self.sim
        sim.received["SetChargingProfile"] += 1
        purpose = cs_charging_profiles.get("charging_profile_purpose", "")
        known = connector_id == 0 or connector_id in sim.connectors
        tx_less = purpose == "TxProfile" and (connector_id == 0 or sim.connectors[connector_id].tx is None)
        if not known or tx_less or (purpose == "ChargePointMaxProfile" and connector_id != 0):
            return result16.SetChargingProfile(status="Rejected")
        try:
            cap = profile_limit_w(cs_charging_profiles["charging_schedule"], sim.identity.phases)
        except (InvalidInput, KeyError):
            return result16.SetChargingProfile(status="Rejected")
        sim.limit_power(connector_id, cap, purpose)
        return result16.SetChargingProfile(status="Accepted")

    @on(Action16.clear_charging_profile)  # type: ignore[untyped-decorator]
    def on_clear_charging_profile(self, **kw: Any) -> Any:
        self.sim.received["ClearChargingProfile"] += 1
        self.sim.clear_limits()
        return result16.ClearChargingProfile(status="Accepted")

    @on(Action16.data_transfer)  # type: ignore[untyped-decorator]
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: Any = None, **kw: Any) -> Any:
        status, out = _on_data_transfer(self.sim, vendor_id, message_id, data)
        return result16.DataTransfer(status=status, data=out)


class SimChargerV16(SimCharger):
    """A simulated OCPP 1.6J charge point."""

    version = "1.6"
    subprotocol = "ocpp1.6"

    def protocol(self, ws: ClientConnection) -> Any:
        return _Cp16(self, ws)

    async def send_boot(self, reason: str) -> tuple[str, int]:
        i = self.identity
        r = await self.call(
            call16.BootNotification(
                charge_point_model=i.model,
                charge_point_vendor=i.vendor,
                firmware_version=i.firmware,
                charge_point_serial_number=i.charger_id[:25],
                meter_serial_number=self.signer.meter_serial[:25],
                meter_type=self.signer.meter_model,
            )
        )
        return str(r.status), int(r.interval)

    async def send_heartbeat(self) -> None:
        await self.call(call16.Heartbeat())

    async def send_status(self, conn: Connector) -> None:
        await self.call(
            call16.StatusNotification(
                connector_id=conn.connector_id,
                error_code=conn.error_code,
                status=conn.status,
                timestamp=self.clock.iso(),
            )
        )

    async def send_authorize(self, id_tag: str) -> str:
        r = await self.call(call16.Authorize(id_tag=id_tag))
        return str(r.id_tag_info["status"])

    async def data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None) -> Any:
        r = await self.call(call16.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data))
        return r.status, r.data

    @staticmethod
    def _sampled(wh: int, context: str, ocmf: str | None) -> list[dict[str, Any]]:
        values: list[dict[str, Any]] = [
            {"value": str(wh), "context": context, "measurand": ENERGY, "location": "Outlet", "unit": "Wh"}
        ]
        if ocmf is not None:
            values.append({"value": ocmf, "context": context, "format": "SignedData", "measurand": ENERGY})
        return values

    def _meter_value(self, ms: int, wh: int, context: str, ocmf: str | None) -> dict[str, Any]:
        return {"timestamp": self.clock.iso(ms), "sampled_value": self._sampled(wh, context, ocmf)}

    def queue_started(self, conn: Connector, tx: SimTransaction, ocmf: str | None) -> None:
        at, wh = tx.started_ms, tx.meter_start_wh
        request = call16.StartTransaction(
            connector_id=tx.connector_id, id_tag=tx.id_tag, meter_start=wh, timestamp=self.clock.iso(at)
        )

        def started(r: Any) -> None:
            tx.csms_id, tx.start_acked = int(r.transaction_id), True
            if r.id_tag_info.get("status") != "Accepted":
                self.deauthorize(tx)

        self.enqueue("StartTransaction", lambda m: request, started, at_ms=at)
        self._queue_meter_values(tx, at, wh, "Transaction.Begin", ocmf)

    def queue_sample(self, conn: Connector, tx: SimTransaction, ocmf: str | None) -> None:
        at, wh, _, _ = tx.signed[-1]
        self._queue_meter_values(tx, at, wh, "Sample.Periodic", ocmf)

    def _queue_meter_values(self, tx: SimTransaction, at: int, wh: int, context: str, ocmf: str | None) -> None:
        meter_value = [self._meter_value(at, wh, context, ocmf)]

        def build(m: QueuedMessage) -> Any:
            if tx.csms_id is None:
                return None
            return call16.MeterValues(connector_id=tx.connector_id, transaction_id=tx.csms_id, meter_value=meter_value)

        self.enqueue("MeterValues", build, at_ms=at)

    def queue_ended(self, conn: Connector, tx: SimTransaction, ocmf: str | None) -> None:
        assert tx.stopped_ms is not None and tx.meter_stop_wh is not None and tx.stop_reason is not None
        begin_ms, begin_wh, _, begin_ocmf = tx.signed[0]
        data = [
            self._meter_value(begin_ms, begin_wh, "Transaction.Begin", begin_ocmf),
            self._meter_value(tx.stopped_ms, tx.meter_stop_wh, "Transaction.End", ocmf),
        ]
        stopped_ms, meter_stop, reason = tx.stopped_ms, tx.meter_stop_wh, tx.stop_reason

        def build(m: QueuedMessage) -> Any:
            if tx.csms_id is None:
                return None
            return call16.StopTransaction(
                meter_stop=meter_stop,
                timestamp=self.clock.iso(stopped_ms),
                transaction_id=tx.csms_id,
                reason=reason,
                id_tag=tx.id_tag,
                transaction_data=data,
            )

        def stopped(r: Any) -> None:
            tx.stop_acked = True

        self.enqueue("StopTransaction", build, stopped, at_ms=stopped_ms)

    def triggered(self, message: str, connector_id: int | None) -> Any:
        targets = [self.connectors[connector_id]] if connector_id else list(self.connectors.values())
        if message == "BootNotification":
            return self.triggered_boot
        if message == "Heartbeat":
            return self.send_heartbeat
        if message == "StatusNotification":

            async def statuses() -> None:
                for c in targets:
                    await self.send_status(c)

            return statuses
        if message == "MeterValues":

            async def meter_values() -> None:
                for c in targets:
                    self.advance(c)
                    tx_id = c.tx.csms_id if c.tx is not None else None
                    mv = [self._meter_value(self.clock.now_ms(), c.register_wh, "Trigger", None)]
                    await self.call(
                        call16.MeterValues(connector_id=c.connector_id, transaction_id=tx_id, meter_value=mv)
                    )

            return meter_values
        return None


# --------------------------------------------------------------------------------------------
# OCPP 2.0.1
# --------------------------------------------------------------------------------------------

# (component, variable, variable instance) -> the setting it reads and writes
VARIABLES: dict[tuple[str, str, str | None], str] = {
    ("OCPPCommCtrlr", "HeartbeatInterval", None): "HeartbeatInterval",
    ("OCPPCommCtrlr", "MessageAttempts", "TransactionEvent"): "TransactionMessageAttempts",
    ("OCPPCommCtrlr", "MessageAttemptInterval", "TransactionEvent"): "TransactionMessageRetryInterval",
    ("SampledDataCtrlr", "TxUpdatedInterval", None): "MeterValueSampleInterval",
    ("SampledDataCtrlr", "TxUpdatedMeasurands", None): "MeterValuesSampledData",
    ("AlignedDataCtrlr", "Interval", None): "ClockAlignedDataInterval",
    ("AuthCtrlr", "AuthorizeRemoteStart", None): "AuthorizeRemoteTxRequests",
    ("AuthCtrlr", "LocalPreAuthorize", None): "LocalPreAuthorize",
    ("AuthCtrlr", "OfflineTxForUnknownIdEnabled", None): "LocalAuthorizeOffline",
    ("TxCtrlr", "StopTxOnInvalidId", None): "StopTransactionOnInvalidId",
    ("TxCtrlr", "EVConnectionTimeOut", None): "ConnectionTimeOut",
}
COMPONENTS = {c for c, _, _ in VARIABLES}

# OCPP 1.6 stop reason (the engine's vocabulary) -> 2.0.1 (triggerReason, stoppedReason)
ENDED: dict[str, tuple[str, str]] = {
    "Local": ("StopAuthorized", "Local"),
    "Remote": ("RemoteStop", "Remote"),
    "EVDisconnected": ("EVDeparted", "EVDisconnected"),
    "DeAuthorized": ("Deauthorized", "DeAuthorized"),
    "SoftReset": ("ResetCommand", "ImmediateReset"),
    "HardReset": ("ResetCommand", "ImmediateReset"),
    "Reboot": ("ResetCommand", "Reboot"),
    "EmergencyStop": ("AbnormalCondition", "EmergencyStop"),
    "PowerLoss": ("AbnormalCondition", "PowerLoss"),
    "Other": ("AbnormalCondition", "Other"),
}


def _id_token(id_tag: str) -> dict[str, str]:
    kind = Identification(id_tag).type
    return {"id_token": id_tag, "type": "ISO14443" if kind == "ISO14443" else "Central"}


class _Cp201(ChargePoint201, _FollowUps):  # type: ignore[misc]
    def __init__(self, sim: SimChargerV201, ws: ClientConnection) -> None:
        super().__init__(sim.charger_id, ws, response_timeout=sim.response_timeout_s, logger=OCPP_LOG)
        self.sim: SimChargerV201 = sim
        self._init_followups()

    @on(Action201.request_start_transaction)  # type: ignore[untyped-decorator]
    def on_request_start(
        self,
        id_token: dict[str, Any],
        remote_start_id: int,
        call_unique_id: str,
        evse_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **kw: Any,
    ) -> Any:
        sim = self.sim
        sim.received["RequestStartTransaction"] += 1
        conn = sim.free_connector(evse_id)
        if conn is None:
            return result201.RequestStartTransaction(status="Rejected")
        cap = None
        if charging_profile:
            try:
                cap = profile_limit_w(charging_profile["charging_schedule"][0], sim.identity.phases)
            except (InvalidInput, KeyError, IndexError):
                return result201.RequestStartTransaction(status="Rejected")
        self._then(
            call_unique_id,
            lambda: sim.remote_start(
                conn.connector_id, id_token["id_token"], cap_w=cap, remote_start_id=remote_start_id
            ),
        )
        return result201.RequestStartTransaction(status="Accepted")

    @after(Action201.request_start_transaction)  # type: ignore[untyped-decorator]
    def after_request_start(self, call_unique_id: str, **kw: Any) -> None:
        self._run_next(call_unique_id)

    @on(Action201.request_stop_transaction)  # type: ignore[untyped-decorator]
    def on_request_stop(self, transaction_id: str, call_unique_id: str, **kw: Any) -> Any:
        self.sim.received["RequestStopTransaction"] += 1
        tx = self.sim.transaction(local_id=transaction_id)
        if tx is None:
            return result201.RequestStopTransaction(status="Rejected")
        self._then(call_unique_id, _stopper(self.sim, tx.connector_id, "Remote"))
        return result201.RequestStopTransaction(status="Accepted")

    @after(Action201.request_stop_transaction)  # type: ignore[untyped-decorator]
    def after_request_stop(self, call_unique_id: str, **kw: Any) -> None:
        self._run_next(call_unique_id)

    @on(Action201.reset)  # type: ignore[untyped-decorator]
    def on_reset(self, type: str, call_unique_id: str, evse_id: int | None = None, **kw: Any) -> Any:
        sim = self.sim
        sim.received["Reset"] += 1
        if evse_id is not None:
            return result201.Reset(status="Rejected")  # resetting one EVSE is not simulated
        if type == "OnIdle" and any(c.tx is not None for c in sim.connectors.values()):
            sim.reset(hard=False, when_idle=True)
            return result201.Reset(status="Scheduled")

        async def reset() -> None:
            sim.reset(hard=True)

        self._then(call_unique_id, reset)
        return result201.Reset(status="Accepted")

    @after(Action201.reset)  # type: ignore[untyped-decorator]
    def after_reset(self, call_unique_id: str, **kw: Any) -> None:
        self._run_next(call_unique_id)

    @on(Action201.trigger_message)  # type: ignore[untyped-decorator]
    def on_trigger_message(
        self, requested_message: str, call_unique_id: str, evse: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        sim = self.sim
        sim.received["TriggerMessage"] += 1
        evse_id = (evse or {}).get("id")
        if evse_id is not None and evse_id not in sim.connectors:
            return result201.TriggerMessage(status="Rejected")
        if requested_message == "BootNotification" and sim.registration == "Accepted":
            return result201.TriggerMessage(status="Rejected")  # F06.FR.17: already accepted
        fn = sim.triggered(requested_message, evse_id)
        if fn is None:
            return result201.TriggerMessage(status="NotImplemented")
        self._then(call_unique_id, fn)
        return result201.TriggerMessage(status="Accepted")

    @after(Action201.trigger_message)  # type: ignore[untyped-decorator]
    def after_trigger_message(self, call_unique_id: str, **kw: Any) -> None:
        self._run_next(call_unique_id)

    @on(Action201.get_variables)  # type: ignore[untyped-decorator]
    def on_get_variables(self, get_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        self.sim.received["GetVariables"] += 1
        results = []
        for item in get_variable_data:
            status, key = self.sim.lookup_variable(item)
            out: dict[str, Any] = {
                "attribute_status": status,
                "component": item["component"],
                "variable": item["variable"],
            }
            if item.get("attribute_type"):
                out["attribute_type"] = item["attribute_type"]
            if key is not None:
                out["attribute_value"] = self.sim.config[key]
            results.append(out)
        return result201.GetVariables(get_variable_result=results)

    @on(Action201.set_variables)  # type: ignore[untyped-decorator]
    def on_set_variables(self, set_variable_data: list[dict[str, Any]], **kw: Any) -> Any:
        self.sim.received["SetVariables"] += 1
        results = []
        for item in set_variable_data:
            status, key = self.sim.lookup_variable(item)
            if key is not None:
                status = self.sim.set_config(key, str(item["attribute_value"]))
                status = "Rejected" if status == "NotSupported" else status
            out: dict[str, Any] = {
                "attribute_status": status,
                "component": item["component"],
                "variable": item["variable"],
            }
            if item.get("attribute_type"):
                out["attribute_type"] = item["attribute_type"]
            results.append(out)
        return result201.SetVariables(set_variable_result=results)

    @on(Action201.set_charging_profile)  # type: ignore[untyped-decorator]
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **kw: Any) -> Any:
        sim = self.sim
        sim.received["SetChargingProfile"] += 1
        purpose = charging_profile.get("charging_profile_purpose", "")
        known = evse_id == 0 or evse_id in sim.connectors
        tx_less = purpose == "TxProfile" and (evse_id == 0 or sim.connectors[evse_id].tx is None)
        if not known or tx_less or (purpose == "ChargingStationMaxProfile" and evse_id != 0):
            return result201.SetChargingProfile(status="Rejected")
        try:
            cap = profile_limit_w(charging_profile["charging_schedule"][0], sim.identity.phases)
        except (InvalidInput, KeyError, IndexError):
            return result201.SetChargingProfile(status="Rejected")
        sim.limit_power(evse_id, cap, purpose)
        return result201.SetChargingProfile(status="Accepted")

    @on(Action201.clear_charging_profile)  # type: ignore[untyped-decorator]
    def on_clear_charging_profile(self, **kw: Any) -> Any:
        self.sim.received["ClearChargingProfile"] += 1
        self.sim.clear_limits()
        return result201.ClearChargingProfile(status="Accepted")

    @on(Action201.data_transfer)  # type: ignore[untyped-decorator]
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: Any = None, **kw: Any) -> Any:
        status, out = _on_data_transfer(self.sim, vendor_id, message_id, data)
        return result201.DataTransfer(status=status, data=out)


class SimChargerV201(SimCharger):
    """A simulated OCPP 2.0.1 charging station; each connector of the identity is an EVSE with connector 1."""

    version = "2.0.1"
    subprotocol = "ocpp2.0.1"

    def protocol(self, ws: ClientConnection) -> Any:
        return _Cp201(self, ws)

    def lookup_variable(self, item: dict[str, Any]) -> tuple[str, str | None]:
        """(attributeStatus, setting) for a GetVariableData/SetVariableData entry."""
        component = item.get("component", {}).get("name", "")
        variable = item.get("variable", {})
        if component not in COMPONENTS:
            return "UnknownComponent", None
        key = VARIABLES.get((component, variable.get("name", ""), variable.get("instance")))
        if key is None:
            return "UnknownVariable", None
        if item.get("attribute_type", "Actual") != "Actual":
            return "NotSupportedAttributeType", None
        return "Accepted", key

    async def send_boot(self, reason: str) -> tuple[str, int]:
        i = self.identity
        station = {
            "model": i.model,
            "vendor_name": i.vendor,
            "firmware_version": i.firmware,
            "serial_number": i.charger_id[:25],
        }
        r = await self.call(call201.BootNotification(charging_station=station, reason=reason))
        return str(r.status), int(r.interval)

    async def send_heartbeat(self) -> None:
        await self.call(call201.Heartbeat())

    async def send_status(self, conn: Connector) -> None:
        status = conn.status if conn.status in ("Available", "Faulted", "Unavailable", "Reserved") else "Occupied"
        await self.call(
            call201.StatusNotification(
                timestamp=self.clock.iso(), connector_status=status, evse_id=conn.connector_id, connector_id=1
            )
        )

    async def send_authorize(self, id_tag: str) -> str:
        r = await self.call(call201.Authorize(id_token=_id_token(id_tag)))
        return str(r.id_token_info["status"])

    async def data_transfer(self, vendor_id: str, message_id: str | None = None, data: Any = None) -> Any:
        r = await self.call(call201.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data))
        return r.status, r.data

    def _meter_value(self, ms: int, wh: int, context: str, ocmf: str | None) -> dict[str, Any]:
        value: dict[str, Any] = {
            "value": wh,
            "context": context,
            "measurand": ENERGY,
            "unit_of_measure": {"unit": "Wh"},
        }
        if ocmf is not None:
            value["signed_meter_value"] = {
                "signed_meter_data": ocmf,
                "signing_method": self.signer.algorithm,
                "encoding_method": "OCMF",
                "public_key": self.signer.public_key_hex,
            }
        return {"timestamp": self.clock.iso(ms), "sampled_value": [value]}

    def _queue_tx_event(
        self,
        tx: SimTransaction,
        event_type: str,
        trigger: str,
        at_ms: int,
        meter_value: dict[str, Any],
        info: dict[str, Any],
        on_result: Callable[[Any], None] | None = None,
    ) -> None:
        seq_no = tx.next_seq()
        extra: dict[str, Any] = {}
        if event_type == "Started":
            extra = {"id_token": _id_token(tx.id_tag), "evse": {"id": tx.connector_id, "connector_id": 1}}

        def build(m: QueuedMessage) -> Any:
            return call201.TransactionEvent(
                event_type=event_type,
                timestamp=self.clock.iso(at_ms),
                trigger_reason=trigger,
                seq_no=seq_no,
                transaction_info={"transaction_id": tx.local_id, **info},
                meter_value=[meter_value],
                offline=True if m.offline else None,
                **extra,
            )

        self.enqueue("TransactionEvent", build, on_result, at_ms=at_ms)

    def queue_started(self, conn: Connector, tx: SimTransaction, ocmf: str | None) -> None:
        info: dict[str, Any] = {"charging_state": "Charging"}
        if tx.remote_start_id is not None:
            info["remote_start_id"] = tx.remote_start_id

        def started(r: Any) -> None:
            tx.start_acked = True
            status = (r.id_token_info or {}).get("status", "Accepted")
            if status != "Accepted":
                self.deauthorize(tx)

        mv = self._meter_value(tx.started_ms, tx.meter_start_wh, "Transaction.Begin", ocmf)
        trigger = "RemoteStart" if tx.remote else "Authorized"
        self._queue_tx_event(tx, "Started", trigger, tx.started_ms, mv, info, started)

    def queue_sample(
        self, conn: Connector, tx: SimTransaction, ocmf: str | None, trigger: str = "MeterValuePeriodic"
    ) -> None:
        at, wh, _, _ = tx.signed[-1]
        context = "Trigger" if trigger == "Trigger" else "Sample.Periodic"
        mv = self._meter_value(at, wh, context, ocmf)
        self._queue_tx_event(tx, "Updated", trigger, at, mv, {"charging_state": "Charging"})

    def queue_ended(self, conn: Connector, tx: SimTransaction, ocmf: str | None) -> None:
        assert tx.stopped_ms is not None and tx.meter_stop_wh is not None and tx.stop_reason is not None
        trigger, stopped_reason = ENDED.get(tx.stop_reason, ("AbnormalCondition", "Other"))

        def ended(r: Any) -> None:
            tx.stop_acked = True

        mv = self._meter_value(tx.stopped_ms, tx.meter_stop_wh, "Transaction.End", ocmf)
        info = {"charging_state": "EVConnected", "stopped_reason": stopped_reason}
        self._queue_tx_event(tx, "Ended", trigger, tx.stopped_ms, mv, info, ended)

    def triggered(self, message: str, evse_id: int | None) -> Any:
        targets = [self.connectors[evse_id]] if evse_id else list(self.connectors.values())
        if message == "BootNotification":
            return self.triggered_boot
        if message == "Heartbeat":
            return self.send_heartbeat
        if message == "StatusNotification":

            async def statuses() -> None:
                for c in targets:
                    await self.send_status(c)

            return statuses
        if message == "MeterValues":

            async def meter_values() -> None:
                for c in targets:
                    self.advance(c)
                    mv = [self._meter_value(self.clock.now_ms(), c.register_wh, "Trigger", None)]
                    await self.call(call201.MeterValues(evse_id=c.connector_id, meter_value=mv))

            return meter_values
        if message == "TransactionEvent":

            async def transaction_events() -> None:
                for c in targets:
                    if c.tx is not None:
                        self.advance(c)
                        self.queue_sample(c, c.tx, self.sign(c, c.tx, "C", self.clock.now_ms()), "Trigger")

            return transaction_events
        return None


def make_charger(version: str, identity: ChargerIdentity, url: str, clock: Any, **kw: Any) -> SimCharger:
    """A simulated charger of OCPP ``version`` ("1.6" or "2.0.1")."""
    if version == "1.6":
        return SimChargerV16(identity, url, clock, **kw)
    if version == "2.0.1":
        return SimChargerV201(identity, url, clock, **kw)
    raise InvalidInput(f"unknown OCPP version {version!r}", "use 1.6 or 2.0.1")
