"""OCPP 2.0.1: the central system's side of a charging station connection."""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from ocpp.v201.enums import Action, RegistrationStatusEnumType

from electra.charging.tokens import TokenInfo
from electra.errors import InvalidInput
from electra.ocpp.frames import LIBRARY_LOG, GuardedRouting, as_ocpp_error
from electra.ocpp.gateway import ConnectionContext
from electra.ocpp.meter import parse_time_ms, readings_v201

LOG = logging.getLogger("electra.ocpp")


def id_token_info(token: TokenInfo) -> dict[str, Any]:
    known = ("Accepted", "Blocked", "NoCredit", "NotAtThisLocation", "NotAtThisTime")
    return {"status": token.status if token.status in known else "Invalid"}


class CentralSystemV201(GuardedRouting, ChargePoint):  # type: ignore[misc]
    def __init__(self, ctx: ConnectionContext, connection: Any) -> None:
        super().__init__(ctx.charger_id, connection, response_timeout=15, logger=LIBRARY_LOG)
        self.ctx = ctx
        self._actions = Action
        self.log_valid_calls()

    @on(Action.boot_notification)  # type: ignore[untyped-decorator]
    async def on_boot_notification(self, charging_station: dict[str, Any], reason: str, **kw: Any) -> Any:
        accepted = await self.ctx.boot(
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
    async def on_heartbeat(self, **kw: Any) -> Any:  # customData, which every 2.0.1 request may carry
        await self.ctx.heartbeat()
        return call_result.Heartbeat(current_time=self.ctx.now_iso())

    @on(Action.status_notification)  # type: ignore[untyped-decorator]
    async def on_status_notification(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **kw: Any
    ) -> Any:
        await self.ctx.status(evse_id, connector_status, None if connector_status != "Faulted" else "Faulted")
        return call_result.StatusNotification()

    @on(Action.authorize)  # type: ignore[untyped-decorator]
    async def on_authorize(self, id_token: dict[str, Any], **kw: Any) -> Any:
        token = await self.ctx.authorize(id_token["id_token"])
        return call_result.Authorize(id_token_info=id_token_info(token))

    @on(Action.meter_values)  # type: ignore[untyped-decorator]
    async def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]], **kw: Any) -> Any:
        try:
            readings_v201(meter_value)  # checked; outside a transaction they are only logged
        except InvalidInput as exc:
            raise as_ocpp_error(exc) from exc
        await self.ctx.durable()
        return call_result.MeterValues()

    @on(Action.transaction_event)  # type: ignore[untyped-decorator]
    async def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        **kw: Any,
    ) -> Any:
        sessions = self.ctx.sessions
        charger = self.ctx.charger_id
        uid = transaction_info["transaction_id"]
        token_value = (kw.get("id_token") or {}).get("id_token")
        token: TokenInfo | None = None
        try:
            ts = parse_time_ms(timestamp)
            readings = readings_v201(kw.get("meter_value") or [])
            known = await sessions.tracked(charger, uid)
            if known is None and event_type != "Started" and not readings:
                # Nothing to open a session with: answer (2.0.1 retries otherwise), keep only the log.
                LOG.warning("%s: %s of unknown transaction %s without meter values", charger, event_type, uid)
                await self.ctx.durable()
                return call_result.TransactionEvent()
            if event_type == "Started" or known is None:
                begin = readings[0] if readings and event_type == "Started" else None
                evse = (kw.get("evse") or {}).get("id", 0)
                started = await sessions.start(
                    charger,
                    "2.0.1",
                    evse,
                    token_value or "",
                    ts,
                    begin.register_wh if begin is not None else None,
                    uid=uid,
                    offline=bool(kw.get("offline")),
                    signed=begin.signed if begin is not None else None,
                )
                token = started.token if token_value else None
                await sessions.seen_event(charger, uid, seq_no, "Started")
                if begin is not None:
                    readings = readings[1:]
            if event_type == "Ended":
                stop_wh = readings[-1].register_wh if readings else None
                await sessions.stop(
                    charger,
                    uid,
                    ts,
                    stop_wh,
                    transaction_info.get("stopped_reason") or "Local",
                    readings,
                    seq_no=seq_no,
                )
            elif readings:
                await sessions.record(charger, uid, readings, seq_no=seq_no)
            elif event_type != "Started":
                await sessions.seen_event(charger, uid, seq_no, event_type)
            if token_value and token is None:
                token = await sessions.authorize(token_value)
        except InvalidInput as exc:
            raise as_ocpp_error(exc) from exc
        await self.ctx.durable()
        if token is not None:
            return call_result.TransactionEvent(id_token_info=id_token_info(token))
        return call_result.TransactionEvent()

    @on(Action.data_transfer)  # type: ignore[untyped-decorator]
    async def on_data_transfer(self, vendor_id: str, **kw: Any) -> Any:
        status, data = await self.ctx.data_transfer(vendor_id, kw.get("message_id"), kw.get("data"))
        return call_result.DataTransfer(status=status, data=data)
