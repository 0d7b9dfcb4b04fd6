"""Baseline OCPP 1.6J central system for bench/ocpp_load.py, written the plain way.

It follows the `ocpp` library's own documented central system (the README quick start and
examples/v16/central_system.py): `websockets.serve(on_connect, ..., subprotocols=["ocpp1.6"])`, one
`ChargePoint` subclass per connection, `@on(Action...)` handlers that return `call_result` objects,
and the library's defaults (schema validation of every request and response, in its thread pool).
The only additions are handlers for the actions the load sends, in that same style, a raised
open-files limit, and logging at WARNING instead of the example's INFO (at INFO the library logs
every frame, which would measure the log handler rather than the central system). Nothing is
persisted: this is the floor a Python OCPP server on this stack starts from.

    python bench/baseline_csms.py --port 9001     # prints "READY <port>" once it listens
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import resource
import signal
from datetime import UTC, datetime

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as cp
from ocpp.v16 import call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.exceptions import ConnectionClosed

logging.basicConfig(level=logging.WARNING)

transaction_ids = itertools.count(1)


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


class ChargePoint(cp):
    @on(Action.boot_notification)
    def on_boot_notification(self, charge_point_vendor, charge_point_model, **kwargs):
        return call_result.BootNotification(current_time=utc_now(), interval=300, status=RegistrationStatus.accepted)

    @on(Action.heartbeat)
    def on_heartbeat(self):
        return call_result.Heartbeat(current_time=utc_now())

    @on(Action.status_notification)
    def on_status_notification(self, connector_id, error_code, status, **kwargs):
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id, meter_value, **kwargs):
        return call_result.MeterValues()

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
        return call_result.StartTransaction(
            transaction_id=next(transaction_ids), id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted)
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(self, transaction_id, meter_stop, timestamp, **kwargs):
        return call_result.StopTransaction(id_tag_info=IdTagInfo(status=AuthorizationStatus.accepted))


async def on_connect(websocket):
    """For every charge point that connects, create a ChargePoint and listen for its messages."""
    if "Sec-WebSocket-Protocol" not in websocket.request.headers:
        logging.error("Client hasn't requested any subprotocol. Closing connection")
        return await websocket.close()
    if not websocket.subprotocol:
        logging.warning("Protocols mismatched: client offered %s", websocket.request.headers["Sec-WebSocket-Protocol"])
        return await websocket.close()

    charge_point_id = websocket.request.path.strip("/")
    charge_point = ChargePoint(charge_point_id, websocket)
    try:
        await charge_point.start()
    except ConnectionClosed:
        logging.info("%s disconnected", charge_point_id)


async def main(host: str, port: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with websockets.serve(on_connect, host, port, subprotocols=["ocpp1.6"]) as server:
        print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    args = ap.parse_args()
    asyncio.run(main(args.host, args.port))
