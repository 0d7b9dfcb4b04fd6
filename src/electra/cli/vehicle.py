"""`electra vehicle`: onboard vehicles, by their owner or by themselves (device-signed, relayed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from electra.chain.bindings import VehicleRecord
from electra.cli import common
from electra.cli.common import AccountOpt, JsonOpt, KeyOpt, console, emit, handles_errors, kv_table
from electra.domain.vehicle import normalize_vin, vin_hash
from electra.errors import InvalidInput

vehicle_app = typer.Typer(help="Vehicles: each one keyed by its VIN hash in VehicleLedger.", no_args_is_help=True)


def vehicle_json(r: VehicleRecord) -> dict[str, Any]:
    return {
        "vehicle_id": r.vehicle_id,
        "vin_hash": r.vin_hash,
        "owner": r.owner,
        "device": r.device,
        "registered_at": r.registered_at,
        "active": r.active,
        "deactivated": r.deactivated,
        "suspended": r.suspended,
    }


@vehicle_app.command("register")
@handles_errors
def register(
    vin: Annotated[
        str,
        typer.Option("--vin", help="The vehicle's 17-character VIN (only its hash goes on-chain)."),
    ],
    device_key: Annotated[
        str | None,
        typer.Option(
            "--device-key",
            help="The vehicle's own key (hex). Default: created and kept in the data dir.",
        ),
    ] = None,
    self_onboard: Annotated[
        bool,
        typer.Option(
            "--self-onboard/--by-owner",
            help="Device signs an EIP-712 onboarding that the relayer sends.",
        ),
    ] = True,
    owner: Annotated[str | None, typer.Option("--owner", help="Owner address when self-onboarding.")] = None,
    sign_only: Annotated[
        Path | None,
        typer.Option("--sign-only", help="Only sign; write the signed onboarding to this file."),
    ] = None,
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a vehicle. By default its device key signs and the operator relays, so it needs no gas."""
    v = normalize_vin(vin)
    h = vin_hash(v)
    e = common.electra()
    sender = common.sender(e.client, key, account)
    existing = e.vehicles.vehicle_id_of_vin(h)
    if existing:
        raise InvalidInput(
            f"this VIN is already registered as vehicle {existing}",
            "show it with `electra vehicle show`",
        )
    device, key_file, created = common.device_account(device_key, "vehicles", v)
    if self_onboard or sign_only:
        signed = e.vehicles.sign_onboarding(device, h, owner or sender.address)
        if sign_only:
            payload = {**signed, "message": {**signed["message"], "vinHash": "0x" + h.hex()}}
            sign_only.write_text(json.dumps(payload, indent=2) + "\n")
            emit(
                {"signed": str(sign_only), "device": device.address},
                as_json,
                lambda: console.print(
                    f"signed onboarding written to {sign_only}; relay it with `electra vehicle relay`"
                ),
            )
            return
        vehicle_id, tx = e.vehicles.relay_onboarding(signed, relayer=sender)
    else:
        if owner:
            raise InvalidInput("--owner applies to --self-onboard only", "send from the owner's key with --key")
        vehicle_id, tx = e.vehicles.register(h, device.address, owner=sender)
    data = {
        **vehicle_json(e.vehicles.vehicle(vehicle_id)),
        "relayed": bool(self_onboard),
        "tx_hash": tx.tx_hash,
        "gas_used": tx.gas_used,
        "device_key_file": str(key_file) if key_file else None,
        "device_key_created": created,
    }
    emit(data, as_json, lambda: kv_table(f"registered vehicle {vehicle_id}", list(data.items())))


@vehicle_app.command("relay")
@handles_errors
def relay(
    signed_file: Annotated[Path, typer.Argument(help="A signed onboarding from `vehicle register --sign-only`.")],
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Relay a vehicle's signed onboarding; the relayer pays the gas."""
    try:
        signed = json.loads(signed_file.read_text())
        m = signed["message"]
        signed["message"] = {**m, "vinHash": bytes.fromhex(str(m["vinHash"]).removeprefix("0x"))}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            f"cannot read a signed onboarding from {signed_file}: {exc}",
            "sign one with --sign-only",
        ) from exc
    e = common.electra()
    vehicle_id, tx = e.vehicles.relay_onboarding(signed, relayer=common.sender(e.client, key, account))
    data = {
        **vehicle_json(e.vehicles.vehicle(vehicle_id)),
        "tx_hash": tx.tx_hash,
        "gas_used": tx.gas_used,
    }
    emit(
        data,
        as_json,
        lambda: kv_table(f"relayed onboarding of vehicle {vehicle_id}", list(data.items())),
    )


@vehicle_app.command("show")
@handles_errors
def show(
    ref: Annotated[str, typer.Argument(help="Vehicle id or VIN.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a vehicle's ledger record."""
    e = common.electra()
    if ref.isdigit():
        vehicle_id = int(ref)
    else:
        vehicle_id = e.vehicles.vehicle_id_of_vin(vin_hash(ref))
        if vehicle_id == 0:
            raise InvalidInput(
                "no vehicle with this VIN is registered",
                "register it with `electra vehicle register`",
            )
    if not 1 <= vehicle_id <= e.vehicles.total():
        raise InvalidInput(f"no vehicle with id {vehicle_id}", "check the id")
    data = vehicle_json(e.vehicles.vehicle(vehicle_id))
    emit(data, as_json, lambda: kv_table(f"vehicle {vehicle_id}", list(data.items())))
