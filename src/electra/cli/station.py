"""`electra station`: register, show and list chargers; their tariffs, leases and meter keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from electra.chain.bindings import StationRecord
from electra.cli import common
from electra.cli.common import AccountOpt, JsonOpt, KeyOpt, console, emit, handles_errors, kv_table
from electra.domain.geo import degrees_to_e6, e6_to_text
from electra.domain.station import (
    StationSpec,
    check_charger_id,
    connector_names,
    ocpp_version_names,
    parse_connectors,
    parse_ocpp_versions,
    parse_operator_id,
)
from electra.errors import InvalidInput

station_app = typer.Typer(help="Chargers: each one an NFT in StationRegistry.", no_args_is_help=True)


def station_json(r: StationRecord) -> dict[str, Any]:
    return {
        "token_id": r.token_id,
        "charger_id": r.charger_id,
        "owner": r.owner,
        "latitude": e6_to_text(r.latitude_e6),
        "longitude": e6_to_text(r.longitude_e6),
        "max_power_w": r.max_power_w,
        "connector_types": connector_names(r.connector_types),
        "ocpp_versions": ocpp_version_names(r.ocpp_versions),
        "ocpi_compliant": r.ocpi_compliant,
        "operator_id": r.operator_id,
        "device": r.device,
        "metadata_hash": r.metadata_hash,
        "registration_hash": r.registration_hash,
        "metadata_uri": r.metadata_uri,
        "registered_at": r.registered_at,
        "active": r.active,
        "deactivated": r.deactivated,
        "suspended": r.suspended,
    }


def _parse_power_kw(text: str) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        watts = Decimal(text) * 1000
    except InvalidOperation as exc:
        raise InvalidInput(f"invalid power {text!r}", "give kW, e.g. --power-kw 22") from exc
    if watts <= 0 or watts != watts.to_integral_value() or watts >= 2**32:
        raise InvalidInput(f"invalid power {text!r} kW", "give a positive power with at most 3 decimals")
    return int(watts)


@station_app.command("register")
@handles_errors
def register(
    charger_id: Annotated[str, typer.Option("--charger-id", help="OCPP charge point identity.")],
    lat: Annotated[str, typer.Option("--lat", help="Latitude, decimal degrees.")],
    lon: Annotated[str, typer.Option("--lon", help="Longitude, decimal degrees.")],
    power_kw: Annotated[str, typer.Option("--power-kw", help="Rated power in kW.")] = "22",
    connectors: Annotated[str, typer.Option(help="Comma list: type1,type2,ccs1,ccs2,chademo,nacs,...")] = "type2",
    ocpp: Annotated[str, typer.Option(help="OCPP versions spoken: 1.6 and/or 2.0.1.")] = "1.6,2.0.1",
    operator_id: Annotated[str, typer.Option("--operator-id", help="OCPI party, e.g. DE*ELC.")] = "DE*ELC",
    ocpi: Annotated[bool, typer.Option("--ocpi/--no-ocpi", help="OCPI compliant.")] = True,
    metadata_uri: Annotated[str, typer.Option("--metadata-uri", help="Where the full metadata lives.")] = "",
    metadata_file: Annotated[
        Path | None,
        typer.Option("--metadata-file", help="Extra JSON metadata to include and hash."),
    ] = None,
    device_key: Annotated[
        str | None,
        typer.Option(
            "--device-key",
            help="The charger's own key (hex). Default: created and kept in the data dir.",
        ),
    ] = None,
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a charger: the device key signs, the owner sends, the owner gets the NFT."""
    check_charger_id(charger_id)
    extra: dict[str, Any] = {}
    if metadata_file is not None:
        try:
            extra = json.loads(metadata_file.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read metadata file {metadata_file}: {exc}", "give a JSON object") from exc
        if not isinstance(extra, dict):
            raise InvalidInput(f"metadata file {metadata_file} is not a JSON object", "wrap it in {...}")
    spec = StationSpec(
        charger_id=charger_id,
        latitude_e6=degrees_to_e6(lat, "latitude"),
        longitude_e6=degrees_to_e6(lon, "longitude"),
        max_power_w=_parse_power_kw(power_kw),
        connector_types=parse_connectors(connectors.split(",")),
        ocpp_versions=parse_ocpp_versions(ocpp.split(",")),
        operator_id=parse_operator_id(operator_id),
        ocpi_compliant=ocpi,
        metadata_uri=metadata_uri,
        metadata=extra,
    )
    e = common.electra()
    owner = common.sender(e.client, key, account)
    existing = e.stations.token_id_of(charger_id)
    if existing:
        raise InvalidInput(
            f"charger id {charger_id!r} is already registered as token {existing}",
            "pick another id",
        )
    device, key_file, created = common.device_account(device_key, "stations", charger_id)
    token_id, tx = e.stations.register(spec, device, owner=owner)
    record = e.stations.station(token_id)
    data = {
        **station_json(record),
        "tx_hash": tx.tx_hash,
        "gas_used": tx.gas_used,
        "device_key_file": str(key_file) if key_file else None,
        "device_key_created": created,
        "metadata": spec.metadata_document(),
    }
    emit(
        data,
        as_json,
        lambda: kv_table(f"registered charger {charger_id} as token {token_id}", list(data.items())),
    )


def _resolve(ref: str) -> int:
    e = common.electra()
    if ref.isdigit():
        return int(ref)
    token_id = e.stations.token_id_of(ref)
    if token_id == 0:
        raise InvalidInput(f"no charger {ref!r} is registered", "list chargers with `electra station list`")
    return token_id


@station_app.command("show")
@handles_errors
def show(
    ref: Annotated[str, typer.Argument(help="Token id or charger id.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a charger's on-chain record and its tokenURI metadata."""
    e = common.electra()
    token_id = _resolve(ref)
    if token_id < 1 or token_id > e.stations.total():
        raise InvalidInput(f"no charger with token id {token_id}", "list chargers with `electra station list`")
    data = {
        **station_json(e.stations.station(token_id)),
        "token_uri_metadata": e.stations.token_metadata(token_id),
    }
    emit(
        data,
        as_json,
        lambda: kv_table(
            f"charger token {token_id}",
            [(k, v) for k, v in data.items() if k != "token_uri_metadata"],
        ),
    )


@station_app.command("list")
@handles_errors
def list_(
    owner: Annotated[str | None, typer.Option(help="Only chargers held by this address.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List registered chargers."""
    e = common.electra()
    records = [e.stations.station(i) for i in range(1, e.stations.total() + 1)]
    if owner:
        records = [r for r in records if r.owner.lower() == owner.lower()]
    rows = [station_json(r) for r in records]

    def human() -> None:
        t = Table("token", "charger id", "owner", "lat", "lon", "kW", "connectors", "active")
        for r in rows:
            t.add_row(
                str(r["token_id"]),
                r["charger_id"],
                r["owner"],
                r["latitude"],
                r["longitude"],
                f"{r['max_power_w'] / 1000:g}",
                ",".join(r["connector_types"]),
                "yes" if r["active"] else "no",
            )
        console.print(t)

    emit({"stations": rows, "count": len(rows)}, as_json, human)


def _set_service(ref: str, active: bool, key: str | None, account: int | None, as_json: bool) -> None:
    e = common.electra()
    owner = common.sender(e.client, key, account)
    token_id = _resolve(ref)
    tx = e.stations.activate(token_id, owner=owner) if active else e.stations.deactivate(token_id, owner=owner)
    word = "activated" if active else "deactivated"
    data = {"token_id": token_id, "active": active, "tx_hash": tx.tx_hash, "gas_used": tx.gas_used}
    emit(data, as_json, lambda: console.print(f"{word} charger token {token_id} ({tx.tx_hash})"))


@station_app.command("deactivate")
@handles_errors
def deactivate(
    ref: Annotated[str, typer.Argument()], key: KeyOpt = None, account: AccountOpt = None, as_json: JsonOpt = False
) -> None:
    """Take a charger out of service (its owner only)."""
    _set_service(ref, False, key, account, as_json)


@station_app.command("activate")
@handles_errors
def activate(
    ref: Annotated[str, typer.Argument()], key: KeyOpt = None, account: AccountOpt = None, as_json: JsonOpt = False
) -> None:
    """Put a deactivated charger back in service (its owner only)."""
    _set_service(ref, True, key, account, as_json)


@station_app.command("tariff")
@handles_errors
def tariff(
    charger_id: Annotated[str, typer.Argument(help="The charger's id.")],
    per_kwh: Annotated[str | None, typer.Option("--per-kwh", help="Energy price per kWh, e.g. 0.39.")] = None,
    per_hour: Annotated[str, typer.Option("--per-hour", help="Price per hour of charging.")] = "0",
    idle_per_hour: Annotated[str, typer.Option("--idle-per-hour", help="Idle fee per hour after the grace.")] = "0",
    idle_grace_min: Annotated[int, typer.Option("--idle-grace-min", min=0)] = 0,
    session_fee: Annotated[str, typer.Option("--session-fee", help="Flat fee per session.")] = "0",
    asset: Annotated[str, typer.Option("--asset", help="EUSD (6 decimals) or ELC (18).")] = "EUSD",
    as_json: JsonOpt = False,
) -> None:
    """Shows a charger's tariff, or (with --per-kwh) sets it within the DAO's bounds."""
    from electra.domain.tariff import Tariff
    from electra.payments.tariffs import TariffBook, governed_bounds

    book = TariffBook(common.store_engine())
    if per_kwh is not None:
        e = common.electra()
        assets = {"EUSD": e.stablecoin.address, "ELC": e.token.address}
        book.bounds = governed_bounds(e.payments.tariff_bounds, assets)
        decimals = {"EUSD": 6, "ELC": 18}.get(asset.upper())
        if decimals is None:
            raise InvalidInput(f"asset {asset}", "use EUSD or ELC")
        per_kwh_units = _units(per_kwh, decimals)
        if per_kwh_units % 1000:
            raise InvalidInput(f"{per_kwh} per kWh is not a whole number of base units per Wh", "round it")
        book.set(
            charger_id,
            Tariff(
                asset.upper(),
                per_kwh_units // 1000,
                _units(per_hour, decimals),
                _units(idle_per_hour, decimals),
                idle_grace_min * 60,
                _units(session_fee, decimals),
            ),
            by=e.client.account.address,
        )
    t = book.get(charger_id)
    data = {"charger_id": charger_id, **t.__dict__}
    emit(data, as_json, lambda: console.print(data, highlight=False))


@station_app.command("lease")
@handles_errors
def lease(
    charger_id: Annotated[str, typer.Argument(help="The charger's id.")],
    public: Annotated[bool | None, typer.Option("--public/--private", help="Lease to the public or not.")] = None,
    window: Annotated[
        list[str] | None, typer.Option("--window", help='Public hours, e.g. "Mon-Fri 07:00-19:00".')
    ] = None,
    allow: Annotated[list[int] | None, typer.Option("--allow", help="A vehicle id always admitted.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Shows a charger's lease, or sets it: public or private, availability windows, allowed vehicles."""
    from electra.payments.tariffs import LeaseBook

    book = LeaseBook(common.store_engine())
    if public is not None:
        book.set(charger_id, public, window or [], allow or [])
    current = book.get(charger_id)
    data = {
        "charger_id": charger_id,
        "public": current.public,
        "windows": [w.text() for w in current.windows],
        "allowed_vehicles": sorted(current.allowed_vehicles),
    }
    emit(data, as_json, lambda: console.print(data, highlight=False))


@station_app.command("meter-key")
@handles_errors
def meter_key(
    charger_id: Annotated[str, typer.Argument(help="The charger's id.")],
    public_key: Annotated[
        str | None,
        typer.Option("--public-key", help="The meter's public key: DER SubjectPublicKeyInfo (hex or base64) or PEM."),
    ] = None,
    public_key_file: Annotated[
        Path | None, typer.Option("--public-key-file", help="A file with the meter's public key (PEM or DER).")
    ] = None,
    curve: Annotated[
        str | None, typer.Option("--curve", help="The key's curve, needed for a bare SEC1 point (e.g. secp256r1).")
    ] = None,
    device: Annotated[
        bool, typer.Option("--device", help="Drop the registered meter key: the NFT's device key signs again.")
    ] = False,
    signing: Annotated[
        str | None,
        typer.Option("--signing", help="required, optional, or default (the platform's ELECTRA_METER_SIGNING)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Shows the key a charger's meter data is verified with and whether it must sign, or sets them."""
    from electra.charging.meter_data import SIGNING_POLICIES, MeterKeyBook
    from electra.metering.keys import MeterKey

    check_charger_id(charger_id)
    if sum(x is not None for x in (public_key, public_key_file)) + device > 1:
        raise InvalidInput("give one of --public-key, --public-key-file and --device", "a charger has one meter key")
    if signing is not None and signing not in (*SIGNING_POLICIES, "default"):
        raise InvalidInput(f"signing policy {signing!r}", "use required, optional or default")
    book = MeterKeyBook(common.store_engine())
    entry = book.get(charger_id)
    key = entry.public_key if entry is not None else None
    policy = entry.signing if entry is not None else None
    if public_key_file is not None:
        try:
            raw = public_key_file.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read {public_key_file}: {exc.strerror}", "give the key file's path") from exc
        key = MeterKey.load(raw, curve)
    elif public_key is not None:
        key = MeterKey.load(public_key, curve)
    elif device:
        key = None
    if signing is not None:
        policy = None if signing == "default" else signing
    changed = public_key is not None or public_key_file is not None or device or signing is not None
    if changed:
        entry = book.put(charger_id, key, policy)
    default = common.settings().meter_signing
    data = {
        "charger_id": charger_id,
        "key_source": "meter key" if key is not None else "device (the charger NFT's device key)",
        "public_key": key.hex if key is not None else None,
        "curve": key.curve if key is not None else "secp256k1",
        "address": key.address if key is not None else None,
        "signing": policy or default,
        "signing_set": policy or "default",
        "updated_at_ms": entry.updated_at_ms if entry is not None else None,
    }
    emit(data, as_json, lambda: kv_table(f"meter key of {charger_id}", list(data.items())))


def _units(text: str, decimals: int) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise InvalidInput(f"amount {text!r} is not a number", "write e.g. 0.39") from exc
    units = value.scaleb(decimals)
    if value < 0 or units != units.to_integral_value():
        raise InvalidInput(f"amount {text} has more than {decimals} decimals or is negative", "round it")
    return int(units)
