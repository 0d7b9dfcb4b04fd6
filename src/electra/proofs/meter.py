"""Checking a session's signed meter data (OCMF) against the charger NFT, with nothing but the chain.

An OCMF record signed with secp256k1 names no key an outsider can trust, and OCPP 1.6 carries no
key at all. But ECDSA on secp256k1 lets anyone recover the (at most two) public keys that can have
made a signature over a message hash; the record is the charger's if one of them is the key whose
Ethereum address StationRegistry holds as the charger's ``device``. So the verifier needs only the
NFT, not the operator's word for which key is the charger's. A key given with the reading (OCPP
2.0.1 ``publicKey``) is used as well, but only ever trusted if its address is the device's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from eth_keys.datatypes import Signature
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError

from electra.domain.record import SessionRecord
from electra.metering.ocmf import OcmfError, OcmfRecord, parse_ocmf, verify_ocmf
from electra.proofs.bundle import SignedReading

SECP256K1 = "ECDSA-secp256k1-SHA256"


def candidate_keys(record: OcmfRecord, signature_hex: str, encoding: str | None) -> list[bytes]:
    """The uncompressed secp256k1 public keys (65 bytes) that can have signed ``record``."""
    try:
        raw = base64.b64decode(signature_hex) if (encoding or "hex") == "base64" else bytes.fromhex(signature_hex)
        r, s = decode_dss_signature(raw)
    except (ValueError, binascii.Error) as exc:
        raise OcmfError(f"the OCMF signature is not a DER ECDSA signature: {exc}", "send SD as hex DER") from exc
    digest = hashlib.sha256(record.payload_json.encode()).digest()
    out = []
    for v in (0, 1):
        try:
            pk = Signature(vrs=(v, r, s)).recover_public_key_from_msg_hash(digest)
        except (BadSignature, ValidationError):
            continue
        out.append(b"\x04" + pk.to_bytes())
    return out


@dataclass(frozen=True)
class ReadingCheck:
    """One signed reading, checked: ``error`` is None when it is the charger's and says what the
    OCPP reading said."""

    reading: SignedReading
    record: OcmfRecord | None
    error: str | None


def check_reading(reading: SignedReading, devices: set[str]) -> ReadingCheck:
    """Parses the OCMF record, checks its signature was made by one of ``devices`` (addresses,
    lower-case) and that its energy register is the OCPP reading's."""
    try:
        doc, record = parse_ocmf(reading.signed_data)
    except OcmfError as exc:
        return ReadingCheck(reading, None, exc.cause)
    if str(doc.signature.SA) != SECP256K1:
        return ReadingCheck(reading, record, f"signature algorithm {doc.signature.SA} is not bound to the charger NFT")
    try:
        keys_ = [bytes.fromhex(reading.public_key.removeprefix("0x"))] if reading.public_key else []
    except ValueError:
        keys_ = []
    keys_ += candidate_keys(record, str(doc.signature.SD), str(doc.signature.SE) if doc.signature.SE else None)
    verified: OcmfRecord | None = None
    last_error = "no key recovered from the signature"
    for key in keys_:
        for device in devices:
            try:
                verified = verify_ocmf(reading.signed_data, key, expected_address=device)
                break
            except OcmfError as exc:
                last_error = exc.cause
        if verified is not None:
            break
    if verified is None:
        return ReadingCheck(reading, record, f"not signed by the charger's device key ({last_error})")
    registers = [r.energy_wh for r in verified.readings]
    if reading.register_wh not in registers:
        return ReadingCheck(
            reading, verified, f"the signed register {registers} Wh is not the reading's {reading.register_wh} Wh"
        )
    return ReadingCheck(reading, verified, None)


@dataclass(frozen=True)
class MeterDataCheck:
    """A session's signed readings against its record: what is wrong (nothing, if ``problems`` is
    empty) and the signed begin and end registers."""

    problems: list[str]
    begin_wh: int | None
    end_wh: int | None
    count: int


def check_meter_data(record: SessionRecord, readings: list[SignedReading], devices: set[str]) -> MeterDataCheck:
    """Every reading is the charger's (:func:`check_reading`), and the record's start and stop
    registers are the signed begin (OCMF TX=B) and end (TX=E) readings where those were sent."""
    problems = []
    begin = end = None
    for reading in readings:
        c = check_reading(reading, devices)
        if c.error is not None:
            problems.append(f"reading at {reading.timestamp_ms}: {c.error}")
            continue
        assert c.record is not None
        for x in c.record.readings:
            if x.reason.startswith("B") and begin is None:
                begin = x.energy_wh
            if x.reason.startswith("E"):
                end = x.energy_wh
    if begin is not None and begin != record.meter_start_wh:
        problems.append(f"the signed begin register is {begin} Wh, the record's start {record.meter_start_wh} Wh")
    if end is not None and end != record.meter_stop_wh:
        problems.append(f"the signed end register is {end} Wh, the record's stop {record.meter_stop_wh} Wh")
    return MeterDataCheck(problems, begin, end, len(readings))
