"""OCPP 1.6J: the central system's side of a charge point connection."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, RegistrationStatus

from electra.ocpp.gateway import ConnectionContext


class CentralSystemV16(ChargePoint):  # type: ignore[misc]
    def __init__(self, ctx: ConnectionContext, connection: Any) -> None:
        super().__init__(ctx.charger_id, connection)
        self.ctx = ctx

    @on(Action.boot_notification)  # type: ignore[untyped-decorator]
    def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **kw: Any) -> Any:
        accepted = self.ctx.boot(
            vendor=charge_point_vendor, model=charge_point_model, firmware=kw.get("firmware_version")
        )
        return call_result.BootNotification(
            current_time=self.ctx.now_iso(),
            interval=self.ctx.heartbeat_interval_s,
            status=RegistrationStatus.accepted if accepted else RegistrationStatus.rejected,
        )

    @on(Action.heartbeat)  # type: ignore[untyped-decorator]
    def on_heartbeat(self) -> Any:
        self.ctx.heartbeat()
        return call_result.Heartbeat(current_time=self.ctx.now_iso())

    @on(Action.status_notification)  # type: ignore[untyped-decorator]
    def on_status_notification(self, connector_id: int, error_code: str, status: str, **kw: Any) -> Any:
        self.ctx.status(connector_id, status, error_code)
        return call_result.StatusNotification()
