"""CSMS-initiated operations on connected chargers, one API for OCPP 1.6 and 2.0.1.

This is the Python service API: the CLI reaches it over the control channel
(:mod:`electra.ocpp.control`) and the REST API calls it in-process. Each operation picks the
version's message (RemoteStartTransaction or RequestStartTransaction, GetConfiguration or
GetVariables, ...) and returns the charger's answer as a plain dict.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call as v16
from ocpp.v201 import call as v201
from websockets.exceptions import ConnectionClosed

from electra.charging.tokens import check_id_token
from electra.errors import ElectraError, InvalidInput

if TYPE_CHECKING:
    from electra.ocpp.gateway import CentralSystem, ChargerLive


class ChargerUnavailable(ElectraError):
    """The charger is not connected, or did not answer in time."""


TRIGGERS = {
    "BootNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "TransactionEvent",
    "LogStatusNotification",
    "SignChargingStationCertificate",
}
_remote_ids = itertools.count(1)


class Commands:
    def __init__(self, system: CentralSystem) -> None:
        self.system = system

    # -- what is connected ----------------------------------------------------------------------

    def connected(self) -> list[dict[str, Any]]:
        return [
            {
                "charger_id": c.charger_id,
                "ocpp": c.version.removeprefix("ocpp"),
                "booted": c.booted,
                "vendor": c.vendor,
                "model": c.model,
                "connectors": {str(k): v for k, v in sorted(c.connectors.items())},
                "last_seen": c.last_seen,
            }
            for c in sorted(self.system.live.values(), key=lambda c: c.charger_id)
        ]

    # -- operations ------------------------------------------------------------------------------

    async def remote_start(self, charger_id: str, id_token: str, connector_id: int | None = None) -> dict[str, Any]:
        check_id_token(id_token)
        live = self._live(charger_id)
        if _v16(live):
            return await self._call(live, v16.RemoteStartTransaction(id_tag=id_token, connector_id=connector_id))
        return await self._call(
            live,
            v201.RequestStartTransaction(
                id_token={"id_token": id_token, "type": "Central"},
                remote_start_id=next(_remote_ids),
                evse_id=connector_id,
            ),
        )

    async def remote_stop(self, charger_id: str, transaction: str) -> dict[str, Any]:
        live = self._live(charger_id)
        if _v16(live):
            if not transaction.isdigit():
                raise InvalidInput(
                    f"OCPP 1.6 transaction ids are integers, not {transaction!r}", "see the session list"
                )
            return await self._call(live, v16.RemoteStopTransaction(transaction_id=int(transaction)))
        return await self._call(live, v201.RequestStopTransaction(transaction_id=transaction))

    async def reset(self, charger_id: str, hard: bool = False) -> dict[str, Any]:
        live = self._live(charger_id)
        if _v16(live):
            return await self._call(live, v16.Reset(type="Hard" if hard else "Soft"))
        return await self._call(live, v201.Reset(type="Immediate" if hard else "OnIdle"))

    async def trigger(self, charger_id: str, message: str, connector_id: int | None = None) -> dict[str, Any]:
        if message not in TRIGGERS:
            raise InvalidInput(f"cannot trigger {message!r}", "one of " + ", ".join(sorted(TRIGGERS)))
        live = self._live(charger_id)
        if _v16(live):
            return await self._call(live, v16.TriggerMessage(requested_message=message, connector_id=connector_id))
        evse = {"id": connector_id} if connector_id else None
        return await self._call(live, v201.TriggerMessage(requested_message=message, evse=evse))

    async def get_config(self, charger_id: str, keys: list[str]) -> dict[str, Any]:
        """1.6: configuration keys. 2.0.1: ``Component.Variable`` names (e.g. ``OCPPCommCtrlr.HeartbeatInterval``)."""
        live = self._live(charger_id)
        if _v16(live):
            return await self._call(live, v16.GetConfiguration(key=keys or None))
        if not keys:
            raise InvalidInput("OCPP 2.0.1 has no 'get all'", "name Component.Variable pairs")
        return await self._call(live, v201.GetVariables(get_variable_data=[_variable(k) for k in keys]))

    async def set_config(self, charger_id: str, key: str, value: str) -> dict[str, Any]:
        live = self._live(charger_id)
        if _v16(live):
            return await self._call(live, v16.ChangeConfiguration(key=key, value=value))
        return await self._call(
            live, v201.SetVariables(set_variable_data=[{**_variable(key), "attribute_value": value}])
        )

    async def set_charging_profile(
        self, charger_id: str, limit_w: int, connector_id: int = 0, profile_id: int = 1, stack_level: int = 0
    ) -> dict[str, Any]:
        """A default profile capping the power (W) at a connector (0: the whole charger)."""
        if limit_w < 0:
            raise InvalidInput(f"a power limit of {limit_w} W", "give 0 or more watts")
        live = self._live(charger_id)
        schedule = {"charging_rate_unit": "W", "charging_schedule_period": [{"start_period": 0, "limit": limit_w}]}
        if _v16(live):
            profile = {
                "charging_profile_id": profile_id,
                "stack_level": stack_level,
                "charging_profile_purpose": "ChargePointMaxProfile" if connector_id == 0 else "TxDefaultProfile",
                "charging_profile_kind": "Absolute",
                "charging_schedule": schedule,
            }
            return await self._call(
                live, v16.SetChargingProfile(connector_id=connector_id, cs_charging_profiles=profile)
            )
        profile = {
            "id": profile_id,
            "stack_level": stack_level,
            "charging_profile_purpose": "ChargingStationMaxProfile" if connector_id == 0 else "TxDefaultProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": [{"id": profile_id, **schedule}],
        }
        return await self._call(live, v201.SetChargingProfile(evse_id=connector_id, charging_profile=profile))

    async def set_tx_profile(
        self,
        charger_id: str,
        connector_id: int,
        transaction_id: str,
        limit: int,
        unit: str = "A",
        phases: int = 3,
        profile_id: int = 100,
    ) -> dict[str, Any]:
        """A TxProfile limiting one running transaction to ``limit`` (A per phase, or W), from now
        until it ends; it overrules the connector's TxDefaultProfile (load balancing)."""
        if limit < 0 or unit not in ("A", "W") or phases not in (1, 2, 3):
            raise InvalidInput(
                f"a TxProfile of {limit} {unit} on {phases} phase(s)", "limit >= 0 in A or W, 1-3 phases"
            )
        live = self._live(charger_id)
        period = {"start_period": 0, "limit": limit, "number_phases": phases}
        schedule = {"charging_rate_unit": unit, "charging_schedule_period": [period]}
        base = {"stack_level": 0, "charging_profile_purpose": "TxProfile", "charging_profile_kind": "Relative"}
        if _v16(live):
            try:
                tx = int(transaction_id)
            except ValueError:
                raise InvalidInput(
                    f"1.6 transaction id {transaction_id!r}", "1.6 transaction ids are integers"
                ) from None
            profile = {"charging_profile_id": profile_id, "transaction_id": tx, **base, "charging_schedule": schedule}
            return await self._call(
                live, v16.SetChargingProfile(connector_id=connector_id, cs_charging_profiles=profile)
            )
        profile = {
            "id": profile_id,
            "transaction_id": transaction_id,
            **base,
            "charging_schedule": [{"id": profile_id, **schedule}],
        }
        return await self._call(live, v201.SetChargingProfile(evse_id=connector_id, charging_profile=profile))

    async def set_default_profile(
        self, charger_id: str, connector_id: int, limit: int, unit: str = "A", profile_id: int = 99
    ) -> dict[str, Any]:
        """A TxDefaultProfile: what a new transaction at the connector may draw until it gets a
        TxProfile of its own (0 for a load-balanced site: wait for the share)."""
        if limit < 0 or unit not in ("A", "W"):
            raise InvalidInput(f"a TxDefaultProfile of {limit} {unit}", "limit >= 0 in A or W")
        live = self._live(charger_id)
        schedule = {"charging_rate_unit": unit, "charging_schedule_period": [{"start_period": 0, "limit": limit}]}
        base = {"stack_level": 0, "charging_profile_purpose": "TxDefaultProfile", "charging_profile_kind": "Relative"}
        if _v16(live):
            profile = {"charging_profile_id": profile_id, **base, "charging_schedule": schedule}
            return await self._call(
                live, v16.SetChargingProfile(connector_id=connector_id, cs_charging_profiles=profile)
            )
        profile = {"id": profile_id, **base, "charging_schedule": [{"id": profile_id, **schedule}]}
        return await self._call(live, v201.SetChargingProfile(evse_id=connector_id, charging_profile=profile))

    async def data_transfer(
        self, charger_id: str, vendor_id: str, message_id: str | None, data: str | None
    ) -> dict[str, Any]:
        live = self._live(charger_id)
        if _v16(live):
            return await self._call(live, v16.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data))
        return await self._call(live, v201.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data))

    # -- plumbing --------------------------------------------------------------------------------

    def _live(self, charger_id: str) -> ChargerLive:
        live = self.system.live.get(charger_id)
        if live is None or live.cp is None:
            raise ChargerUnavailable(f"charger {charger_id} is not connected", "see `electra ocpp chargers`")
        return live

    async def _call(self, live: ChargerLive, payload: Any) -> dict[str, Any]:
        try:
            result = await live.cp.call(payload, suppress=False)
        except TimeoutError as exc:
            raise ChargerUnavailable(f"charger {live.charger_id} did not answer {type(payload).__name__}") from exc
        except OCPPError as exc:
            raise ChargerUnavailable(
                f"charger {live.charger_id} answered {type(payload).__name__} with {exc.code}: {exc.description}"
            ) from exc
        except ConnectionClosed as exc:
            raise ChargerUnavailable(f"charger {live.charger_id} went away during {type(payload).__name__}") from exc
        return _plain(result)


def _v16(live: ChargerLive) -> bool:
    return live.version == "ocpp1.6"


def _variable(name: str) -> dict[str, Any]:
    component, sep, variable = name.partition(".")
    if not sep or not component or not variable:
        raise InvalidInput(f"variable {name!r}", "write Component.Variable, e.g. OCPPCommCtrlr.HeartbeatInterval")
    return {"component": {"name": component}, "variable": {"name": variable}}


def _plain(result: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return {k: v for k, v in dataclasses.asdict(result).items() if v is not None}
    return {"result": result}
