"""Checking a session's signed meter data (OCMF) against the charger NFT, with nothing but the chain.

An OCMF record signed with secp256k1 names no key an outsider can trust, and OCPP 1.6 carries no
key at all. But ECDSA on secp256k1 lets anyone recover the (at most two) public keys that can have
made a signature (:func:`electra.metering.keys.recover_secp256k1`); the record is the charger's if
one of them is the key whose Ethereum address StationRegistry holds as the charger's ``device``. So
the verifier needs only the NFT, not the operator's word for which key is the charger's.

A meter with a key of its own on another curve (an Eichrecht meter's secp256r1 key, registered with
`electra station meter-key`) cannot be tied to the NFT on-chain: its bundle carries the registered
key, the records must verify under it, and the check says the key is the operator's registration.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyocmf import PyOCMFError
from pyocmf.crypto.verification import decode_signature_data

from electra.domain.record import SessionRecord
from electra.metering.keys import SECP256K1, MeterKey, MeterKeyError, parse_algorithm, recover_secp256k1
from electra.metering.ocmf import OcmfError, OcmfRecord, energy_reading, parse_ocmf, verify_ocmf
from electra.proofs.bundle import SignedReading


@dataclass(frozen=True)
class ReadingCheck:
    """One signed reading, checked: ``error`` is None when it is the charger's and says what the
    OCPP reading said."""

    reading: SignedReading
    record: OcmfRecord | None
    error: str | None


def check_reading(reading: SignedReading, devices: set[str], meter_key: MeterKey | None = None) -> ReadingCheck:
    """Parses the OCMF record, checks it was signed by one of ``devices`` (addresses, lower-case)
    or, for a charger with a registered meter key, by that key, and that its energy register is
    the OCPP reading's."""
    try:
        doc, record = parse_ocmf(reading.signed_data)
        curve, _ = parse_algorithm(str(doc.signature.SA or ""))
    except (OcmfError, MeterKeyError) as exc:
        return ReadingCheck(reading, None, exc.cause)
    if meter_key is not None:
        keys = [meter_key]
    elif curve != SECP256K1:
        return ReadingCheck(reading, record, f"signed on {curve}, but the charger has no registered meter key")
    else:
        try:
            signature = decode_signature_data(doc.signature.SD, doc.signature.SE)
        except PyOCMFError as exc:
            return ReadingCheck(reading, record, f"cannot read the signature: {exc}")
        keys = [
            k
            for k in recover_secp256k1(signature, record.payload_json.encode())
            if (k.address or "").lower() in devices
        ]
        if not keys:
            return ReadingCheck(reading, record, "not signed by the charger's device key")
    try:
        verified = verify_ocmf(reading.signed_data, keys[0])
    except OcmfError as exc:
        return ReadingCheck(reading, record, f"not signed by the charger's key ({exc.cause})")
    energy = energy_reading(verified)
    if energy is None or energy.energy_wh != reading.register_wh:
        got = None if energy is None else energy.energy_wh
        return ReadingCheck(
            reading, verified, f"the signed register {got} Wh is not the reading's {reading.register_wh} Wh"
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


def check_meter_data(
    record: SessionRecord, readings: list[SignedReading], devices: set[str], meter_key: MeterKey | None = None
) -> MeterDataCheck:
    """Every reading is the charger's (:func:`check_reading`), and the record's start and stop
    registers are the signed begin (OCMF TX=B) and end (TX=E) readings where those were sent."""
    problems = []
    begin = end = None
    for reading in readings:
        c = check_reading(reading, devices, meter_key)
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
