"""OCMF (Open Charge Metering Format, S.A.F.E. e.V.) records signed by a charger's meter.

A record is ``OCMF|{payload JSON}|{signature JSON}``. The payload names the gateway (the charger),
the meter, who was identified, the charge point and a list of readings; the signature is ECDSA
with SHA-256 of the exact payload bytes, DER-encoded and hex in ``SD``.

By default the key is the charger's own device key: the secp256k1 key whose Ethereum address is
the ``device`` of the charger NFT in StationRegistry. A verifier therefore needs no certificate: it
derives the address from the public key (:func:`ethereum_address`) and compares it with the NFT.
A charger may instead have a meter key of its own registered with the platform (a secp256r1 key
of an Eichrecht meter, say); every curve of :mod:`electra.metering.keys` is verified.

Energy is integer Wh everywhere in Electra; OCMF carries kWh with three decimals, so the
conversion is exact both ways (12345 Wh <-> 12.345 kWh) and a value with more decimals is refused.
Parsing, format validation and signature verification are pyocmf's; building and signing (which
pyocmf does not do) are here. See docs/simulator.md.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyocmf import OCMF, PyOCMFError
from pyocmf.crypto.verification import decode_signature_data

from electra.errors import InvalidInput
from electra.metering.keys import CURVES, SECP256K1, MeterKey, MeterKeyError, algorithm

FORMAT_VERSION = "1.0"
SIGNATURE_ALGORITHM = "ECDSA-secp256k1-SHA256"  # the device key's
ENERGY_OBIS = "1-b:1.8.0"  # active energy import, total (the billing register)
# OBIS active energy import registers: C = 1, D = 8 (1-b:1.8.0, 1-0:1.8.0*255, 01-00:01.08.00.FF, 1-b:1.8.e)
_IMPORT_OBIS = re.compile(r"^0?1-[0-9A-Za-z]{1,2}:0?1\.0?8\.")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ISO14443_UID = re.compile(r"^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{14})$")
_WH_PER_KWH = 1000


class OcmfError(InvalidInput):
    """An OCMF record that cannot be built, parsed or trusted."""


class OcmfSignatureInvalid(OcmfError):
    """The signature does not match the payload and key, or the key is not the charger's."""


def format_kwh(wh: int) -> str:
    """Integer Wh as OCMF's kWh with exactly three decimals: 12345 -> "12.345", 7 -> "0.007"."""
    if isinstance(wh, bool) or not isinstance(wh, int):
        raise OcmfError(f"energy must be integer Wh, got {wh!r}", "keep energy in whole Wh")
    if wh < 0:
        raise OcmfError(f"a meter register cannot be negative ({wh} Wh)", "give the register value")
    return f"{wh // _WH_PER_KWH}.{wh % _WH_PER_KWH:03d}"


def parse_kwh(value: Decimal | str | int, unit: str = "kWh") -> int:
    """An OCMF reading value in kWh (or Wh) as integer Wh; refuses anything finer than 1 Wh."""
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise OcmfError(f"reading value {value!r} is not a number", "RV must be a JSON number") from exc
    if unit == "kWh":
        wh = number * _WH_PER_KWH
    elif unit == "Wh":
        wh = number
    else:
        raise OcmfError(f"reading unit {unit!r} is not an energy unit", "use RU kWh or Wh")
    if not wh.is_finite() or wh != wh.to_integral_value():
        raise OcmfError(f"reading value {value} {unit} is not a whole number of Wh", "Electra meters in whole Wh")
    if wh < 0:
        raise OcmfError(f"reading value {value} {unit} is negative", "a register never goes below zero")
    return int(wh)


def ocmf_time(ms: int, status: str = "S") -> str:
    """Epoch milliseconds as OCMF's TM: ``2026-11-22T10:00:00,000+0000 S`` (UTC, time status)."""
    t = _EPOCH + dt.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f",{t.microsecond // 1000:03d}+0000 {status}"


def _epoch_ms(t: dt.datetime) -> int:
    if t.tzinfo is None or t.utcoffset() is None:
        raise OcmfError(f"reading time {t.isoformat()} has no UTC offset", "send TM with its offset, e.g. +0000")
    return (t - _EPOCH) // dt.timedelta(milliseconds=1)


@dataclass(frozen=True)
class OcmfReading:
    """One meter reading. ``reason`` is OCMF's TX: B begin, C charging (periodic), E end, T tariff..."""

    time_ms: int
    energy_wh: int
    reason: str = "C"
    current_type: str = "AC"
    status: str = "G"
    error_flags: str = ""
    time_status: str = "S"
    obis: str = ENERGY_OBIS


@dataclass(frozen=True)
class Identification:
    """Who the record is assigned to: an RFID UID (ISO14443) or a token known to the CSMS (CENTRAL)."""

    data: str
    flags: tuple[str, ...] = ()
    level: str = "TRUSTED"

    @property
    def type(self) -> str:
        return "ISO14443" if _ISO14443_UID.match(self.data) else "CENTRAL"


@dataclass(frozen=True)
class OcmfRecord:
    """A parsed (and, from :func:`verify_ocmf`, verified) record."""

    text: str
    payload_json: str
    gateway_id: str | None
    gateway_serial: str | None
    pagination: str | None
    meter_vendor: str | None
    meter_serial: str | None
    identified: bool | None
    identification_type: str | None
    identification: str | None
    charge_point_id_type: str | None
    charge_point_id: str | None
    tariff_text: str | None
    readings: tuple[OcmfReading, ...]
    signature_algorithm: str
    signer_address: str = ""
    flags: tuple[str, ...] = field(default=())


def _public_key(public_key: bytes | str | MeterKey) -> MeterKey:
    if isinstance(public_key, MeterKey):
        return public_key
    try:
        return MeterKey.load(public_key)
    except MeterKeyError as exc:
        raise OcmfError(exc.cause, exc.fix) from exc


def public_key_der(public_key: bytes | str) -> bytes:
    """A public key as DER SubjectPublicKeyInfo: from DER or PEM on any verified curve, or from SEC1
    (33/65 bytes) or raw X||Y on secp256k1. Accepts bytes or hex (with or without 0x) or base64.
    """
    return _public_key(public_key).der


def ethereum_address(public_key: bytes | str | MeterKey) -> str:
    """The Ethereum address of a secp256k1 public key: the last 20 bytes of keccak256(X||Y)."""
    key = _public_key(public_key)
    if key.address is None:
        raise OcmfError(f"a {key.curve} key has no Ethereum address", "Electra devices sign with their secp256k1 key")
    return key.address


class OcmfSigner:
    """The signing side of a charger's meter: its key and the names it signs under.

    By default the key is the charger's secp256k1 device key; ``curve`` names another (a separate
    meter key, e.g. ``secp256r1``), given as the private scalar, big-endian, of the curve's size.
    """

    def __init__(
        self,
        private_key: bytes,
        gateway_serial: str,
        meter_serial: str,
        gateway_id: str = "ELECTRA-SIM",
        gateway_version: str = "1.0",
        meter_vendor: str = "Electra",
        meter_model: str = "SimMeter",
        curve: str = SECP256K1,
    ) -> None:
        if curve not in CURVES:
            raise OcmfError(f"unknown curve {curve!r}", f"use one of {', '.join(CURVES)}")
        size = (CURVES[curve]().key_size + 7) // 8
        if len(private_key) != size:
            raise OcmfError(f"a {curve} key is {size} bytes", "give the meter's private key")
        try:
            self._key = ec.derive_private_key(int.from_bytes(private_key, "big"), CURVES[curve]())
        except ValueError as exc:
            raise OcmfError(f"not a {curve} private key", "give a scalar between 1 and the curve order") from exc
        self.curve = curve
        self.algorithm = algorithm(curve)
        self.gateway_serial = gateway_serial
        self.meter_serial = meter_serial
        self.gateway_id = gateway_id
        self.gateway_version = gateway_version
        self.meter_vendor = meter_vendor
        self.meter_model = meter_model
        self.public_key_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = MeterKey.load(self.public_key_der)
        self.address = self.public_key.address  # None off secp256k1

    @property
    def public_key_hex(self) -> str:
        return self.public_key_der.hex()

    def sign(self, payload: bytes) -> bytes:
        """DER ECDSA signature over SHA-256(payload)."""
        return self._key.sign(payload, ec.ECDSA(hashes.SHA256()))


def build_ocmf(
    signer: OcmfSigner,
    readings: Sequence[OcmfReading],
    *,
    pagination: int,
    charge_point_id: str,
    identification: Identification | None = None,
    tariff_text: str = "",
) -> str:
    """A signed record ``OCMF|payload|signature``; ``pagination`` n gives PG "Tn"."""
    if not readings:
        raise OcmfError("an OCMF record needs at least one reading", "give the meter reading to sign")
    if pagination < 0:
        raise OcmfError(f"invalid pagination {pagination}", "count records from 1")
    ident = identification
    parts: list[tuple[str, str]] = [
        ("FV", _s(FORMAT_VERSION)),
        ("GI", _s(signer.gateway_id)),
        ("GS", _s(signer.gateway_serial)),
        ("GV", _s(signer.gateway_version)),
        ("PG", _s(f"T{pagination}")),
        ("MV", _s(signer.meter_vendor)),
        ("MM", _s(signer.meter_model)),
        ("MS", _s(signer.meter_serial)),
        ("IS", "true" if ident else "false"),
        ("IL", _s(ident.level if ident else "NONE")),
        ("IF", json.dumps(list(ident.flags) if ident else [], separators=(",", ":"))),
        ("IT", _s(ident.type if ident else "NONE")),
    ]
    if ident:
        parts.append(("ID", _s(ident.data)))
    parts += [
        ("TT", _s(tariff_text)),
        ("CT", _s("CBIDC")),
        ("CI", _s(charge_point_id)),
        ("RD", "[" + ",".join(_reading_json(r) for r in readings) + "]"),
    ]
    payload = "{" + ",".join(f'"{k}":{v}' for k, v in parts) + "}"
    signature = signer.sign(payload.encode())
    sig_json = json.dumps({"SA": signer.algorithm, "SD": signature.hex().upper()}, separators=(",", ":"))
    return f"OCMF|{payload}|{sig_json}"


def _s(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _reading_json(r: OcmfReading) -> str:
    fields = [
        ("TM", _s(ocmf_time(r.time_ms, r.time_status))),
        ("TX", _s(r.reason)),
        ("RV", format_kwh(r.energy_wh)),  # a JSON number with exactly three decimals
        ("RI", _s(r.obis)),
        ("RU", _s("kWh")),
        ("RT", _s(r.current_type)),
        ("EF", _s(r.error_flags)),
        ("ST", _s(r.status)),
    ]
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields) + "}"


def _plain_text(text: str) -> str:
    """OCMF as sent: plain, hex (pyocmf reads it) or base64 (OCPP 2.0.1's signedMeterData wording)."""
    t = text.strip()
    if t.startswith("OCMF|"):
        return t
    try:
        decoded = base64.b64decode(t, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return t
    return decoded if decoded.startswith("OCMF|") else t


def parse_ocmf(text: str, *, strict: bool = True) -> tuple[OCMF, OcmfRecord]:
    """Parses a record without checking its signature (pyocmf's parser; strict: spec deviations fail)."""
    plain = _plain_text(text)
    try:
        doc = OCMF.from_string(plain, strict=strict)
    except PyOCMFError as exc:
        raise OcmfError(f"not a valid OCMF record: {exc}", "send OCMF|{payload}|{signature}") from exc
    p = doc.payload
    readings = []
    for r in p.RD:
        if r.RV is None or r.RU is None:
            raise OcmfError("an OCMF reading without a value or unit", "every reading carries RV and RU")
        readings.append(
            OcmfReading(
                time_ms=_epoch_ms(r.TM.timestamp),
                energy_wh=parse_kwh(r.RV, str(r.RU)),
                reason=str(r.TX) if r.TX is not None else "",
                current_type=str(r.RT) if r.RT is not None else "",
                status=str(r.ST) if r.ST is not None else "",
                error_flags=r.EF or "",
                time_status=str(r.TM.status),
                obis=str(r.RI) if r.RI is not None else "",
            )
        )
    record = OcmfRecord(
        text=plain,
        payload_json=plain.split("|", 2)[1],
        gateway_id=p.GI,
        gateway_serial=p.GS,
        pagination=p.PG,
        meter_vendor=p.MV,
        meter_serial=p.MS,
        identified=p.IS if isinstance(p.IS, bool) else None,
        identification_type=str(p.IT) if p.IT is not None else None,
        identification=str(p.ID) if p.ID is not None else None,
        charge_point_id_type=str(p.CT) if p.CT is not None else None,
        charge_point_id=p.CI,
        tariff_text=p.TT,
        readings=tuple(readings),
        signature_algorithm=str(doc.signature.SA),
        flags=tuple(str(f) for f in p.IF),
    )
    return doc, record


def check_signature(doc: OCMF, record: OcmfRecord, key: MeterKey) -> None:
    """Raises :class:`OcmfSignatureInvalid` unless ``key`` signed the record's exact payload bytes."""
    sig = doc.signature
    sa = str(sig.SA) if sig.SA is not None else ""
    if sig.SM is not None and str(sig.SM) != "application/x-der":
        raise OcmfSignatureInvalid(f"signature mime type {sig.SM} is not DER", "send SM application/x-der")
    try:
        signature = decode_signature_data(sig.SD, sig.SE)
        valid = key.verify(signature, record.payload_json.encode(), sa)
    except PyOCMFError as exc:
        raise OcmfSignatureInvalid(f"cannot read the OCMF signature: {exc}", "send SD as hex or base64 DER") from exc
    except MeterKeyError as exc:
        raise OcmfSignatureInvalid(exc.cause, exc.fix) from exc
    if not valid:
        raise OcmfSignatureInvalid(
            f"the OCMF signature does not match (signer key {key.address or key.curve}, "
            f"gateway {record.gateway_serial})",
            "the payload was altered or another key signed it; do not trust these readings",
        )


def energy_reading(record: OcmfRecord) -> OcmfReading | None:
    """The reading of the active energy import register (the billing register): the last one on an
    import OBIS code, or the last one when the record names no register."""
    imports = [r for r in record.readings if not r.obis or _IMPORT_OBIS.match(r.obis)]
    return imports[-1] if imports else None


def verify_ocmf(
    text: str, public_key: bytes | str | MeterKey, *, expected_address: str | None = None, strict: bool = True
) -> OcmfRecord:
    """Parses a record and checks its signature with the meter's public key.

    With ``expected_address`` (the ``device`` of the charger's NFT), the key must also be that
    device's. Returns the record with ``signer_address`` set (empty for a key off secp256k1);
    raises :class:`OcmfSignatureInvalid` if the payload was altered, another key signed it, or the
    key is not the expected device's.
    """
    key = _public_key(public_key)
    if expected_address is not None and (key.address or "").lower() != expected_address.lower():
        raise OcmfSignatureInvalid(
            f"the OCMF key belongs to {key.address or 'a ' + key.curve + ' meter'}, "
            f"not to the charger's device {expected_address}",
            "verify with the public key of the device registered on the charger NFT",
        )
    doc, record = parse_ocmf(text, strict=strict)
    check_signature(doc, record, key)
    return dataclasses.replace(record, signer_address=key.address or "")
