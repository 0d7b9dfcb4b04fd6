"""OCPP 1.6J: the central system's side of a charge point connection."""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

from electra.charging.service import UnknownTransaction
from electra.charging.tokens import TokenInfo
from electra.errors import InvalidInput
from electra.ocpp.frames import LIBRARY_LOG, GuardedRouting, as_ocpp_error
from electra.ocpp.gateway import ConnectionContext
from electra.ocpp.meter import parse_time_ms, readings_v16

LOG = logging.getLogger("electra.ocpp")


def id_tag_info(token: TokenInfo) -> dict[str, Any]:
    status = {"Accepted": AuthorizationStatus.accepted, "Blocked": AuthorizationStatus.blocked}
    return {"status": status.get(token.status, AuthorizationStatus.invalid)}


class CentralSystemV16(GuardedRouting, ChargePoint):  # type: ignore[misc]
    def __init__(self, ctx: ConnectionContext, connection: Any) -> None:
        super().__init__(ctx.charger_id, connection, response_timeout=15, logger=LIBRARY_LOG)
        self.ctx = ctx
        self._actions = Action
        self.log_valid_calls()

    @on(Action.boot_notification)  # type: ignore[untyped-decorator]
    async def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **kw: Any) -> Any:
        accepted = await self.ctx.boot(
            vendor=charge_point_vendor, model=charge_point_model, firmware=kw.get("firmware_version")
        )
        return call_result.BootNotification(
            current_time=self.ctx.now_iso(),
            interval=self.ctx.heartbeat_interval_s,
            status=RegistrationStatus.accepted if accepted else RegistrationStatus.rejected,
        )

    @on(Action.heartbeat)  # type: ignore[untyped-decorator]
    async def on_heartbeat(self) -> Any:
        await self.ctx.heartbeat()
        return call_result.Heartbeat(current_time=self.ctx.now_iso())

    @on(Action.status_notification)  # type: ignore[untyped-decorator]
    async def on_status_notification(self, connector_id: int, error_code: str, status: str, **kw: Any) -> Any:
        await self.ctx.status(connector_id, status, None if error_code == "NoError" else error_code)
        return call_result.StatusNotification()

    @on(Action.authorize)  # type: ignore[untyped-decorator]
    async def on_authorize(self, id_tag: str) -> Any:
        token = await self.ctx.authorize(id_tag)
        return call_result.Authorize(id_tag_info=id_tag_info(token))

    @on(Action.start_transaction)  # type: ignore[untyped-decorator]
    async def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kw: Any
    ) -> Any:
        try:
            started = await self.ctx.sessions.start(
                self.ctx.charger_id,
                "1.6",
                connector_id,
                id_tag,
                parse_time_ms(timestamp),
                meter_start,
                offline=self.ctx.live.connected_at * 1000 > parse_time_ms(timestamp) + 60_000,
            )
        except InvalidInput as exc:
            raise as_ocpp_error(exc) from exc
        await self.ctx.durable()
        return call_result.StartTransaction(transaction_id=started.db_id, id_tag_info=id_tag_info(started.token))

    @on(Action.meter_values)  # type: ignore[untyped-decorator]
    async def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]], **kw: Any) -> Any:
        tx = kw.get("transaction_id")
        try:
            readings = readings_v16(meter_value)
            if tx is not None and readings:
                await self.ctx.sessions.record(self.ctx.charger_id, str(tx), readings)
        except UnknownTransaction as exc:
            LOG.warning("%s: %s; meter values kept in the message log only", self.ctx.charger_id, exc.cause)
        except InvalidInput as exc:
            raise as_ocpp_error(exc) from exc
        await self.ctx.durable()
        return call_result.MeterValues()

    @on(Action.stop_transaction)  # type: ignore[untyped-decorator]
    async def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int, **kw: Any) -> Any:
        try:
            readings = readings_v16(kw.get("transaction_data") or [])
            await self.ctx.sessions.stop(
                self.ctx.charger_id,
                str(transaction_id),
                parse_time_ms(timestamp),
                meter_stop,
                kw.get("reason") or "Local",
                readings,
            )
        except UnknownTransaction as exc:
            # 1.6 (4.10): sanity checks never keep the central system from answering .conf, or the
            # charger retries for ever. The message stays in the log for a human to look at.
            LOG.warning("%s: %s; stop kept in the message log only", self.ctx.charger_id, exc.cause)
        except InvalidInput as exc:
            raise as_ocpp_error(exc) from exc
        await self.ctx.durable()
        id_tag = kw.get("id_tag")
        if id_tag:
            token = await self.ctx.sessions.authorize(id_tag)
            return call_result.StopTransaction(id_tag_info=id_tag_info(token))
        return call_result.StopTransaction()

    @on(Action.data_transfer)  # type: ignore[untyped-decorator]
    async def on_data_transfer(self, vendor_id: str, **kw: Any) -> Any:
        status, data = await self.ctx.data_transfer(vendor_id, kw.get("message_id"), kw.get("data") or "")
        return call_result.DataTransfer(status=status, data=data)
