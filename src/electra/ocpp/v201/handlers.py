"""OCPP 2.0.1: the central system's side of a charging station connection."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from ocpp.v201.enums import Action, RegistrationStatusEnumType

from electra.ocpp.gateway import ConnectionContext


class CentralSystemV201(ChargePoint):  # type: ignore[misc]
    def __init__(self, ctx: ConnectionContext, connection: Any) -> None:
        super().__init__(ctx.charger_id, connection)
        self.ctx = ctx

    @on(Action.boot_notification)  # type: ignore[untyped-decorator]
    def on_boot_notification(self, charging_station: dict[str, Any], reason: str, **kw: Any) -> Any:
        accepted = self.ctx.boot(
            vendor=charging_station.get("vendor_name", ""),
            model=charging_station.get("model", ""),
            firmware=charging_station.get("firmware_version"),
        )
        return call_result.BootNotification(
            current_time=self.ctx.now_iso(),
            interval=self.ctx.heartbeat_interval_s,
            status=RegistrationStatusEnumType.accepted if accepted else RegistrationStatusEnumType.rejected,
        )

    @on(Action.heartbeat)  # type: ignore[untyped-decorator]
    def on_heartbeat(self, **kw: Any) -> Any:
        self.ctx.heartbeat()
        return call_result.Heartbeat(current_time=self.ctx.now_iso())

    @on(Action.status_notification)  # type: ignore[untyped-decorator]
    def on_status_notification(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **kw: Any
    ) -> Any:
        self.ctx.status(connector_id, connector_status, None, evse_id=evse_id)
        return call_result.StatusNotification()
