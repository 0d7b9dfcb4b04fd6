"""Signed meter data: the keys and algorithms verified, the OCMF rules across a session, and the
session service verifying on receipt over the real store (SQLite and PostgreSQL): outcomes per
reading and per session, the flag, and a flagged session billed manually with energy 0."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from pyocmf import OCMF, PyOCMFError
from sqlalchemy import Engine, select

from electra.charging.meter_data import OPTIONAL, REQUIRED, MeterDataVerifier, MeterKeyBook
from electra.charging.service import SessionService
from electra.charging.tokens import TokenRegistry
from electra.domain.meter_data import MeterData, ReadingCheck, Verification, judge, transaction_page
from electra.domain.session import Flag, Outcome
from electra.errors import InvalidInput
from electra.metering import OcmfError, OcmfSignatureInvalid, verify_ocmf
from electra.metering.keys import (
    CURVES,
    SECP256R1,
    SUPPORTED_ALGORITHMS,
    MeterKey,
    MeterKeyError,
    algorithm,
    parse_algorithm,
    recover_secp256k1,
)
from electra.metering.ocmf import Identification, OcmfReading, OcmfSigner, build_ocmf
from electra.ocpp.meter import RegisterReading, SignedMeter
from electra.payments.authorizations import AuthorizationBook
from electra.payments.billing import MANUAL, Biller
from electra.payments.tariffs import TariffBook
from electra.store.models import MeterValueRecord, SessionRecord

T0 = 1_795_860_000_000  # 2026-11-28T10:00:00Z
MINUTE = 60_000
DEVICE = Account.from_key("0x" + "31" * 32)
R1_KEY = hashlib.sha256(b"test meter r1").digest()
EUSD = "0x" + "e5" * 20
N_K1 = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DEVICE_SIGNER = OcmfSigner(bytes(DEVICE.key), "CP-1", "MTR-1")
NO_AUTHORIZATION = "no charge authorization (a driver's token, or none was bound)"


# -- the rules across a session (pure) ----------------------------------------------------------


def ok(minute: int, wh: int, page: int, tx: str = "C", ms: str = "MTR-1", gs: str = "CP-1") -> ReadingCheck:
    return ReadingCheck(T0 + minute * MINUTE, wh, Verification.VERIFIED, "", f"T{page}", tx, ms, gs)


def trail(n: int = 4, first_page: int = 10) -> list[ReadingCheck]:
    """A clean session: begin at 1,000 Wh, n - 2 periodic records, end."""
    out = [ok(0, 1_000, first_page, "B")]
    out += [ok(i, 1_000 + 500 * i, first_page + i) for i in range(1, n - 1)]
    out.append(ok(n - 1, 1_000 + 500 * (n - 1), first_page + n - 1, "E"))
    return out


def verdict(checks: list[ReadingCheck], required: bool = True, stop_wh: int | None = None) -> Any:
    ends = [c.register_wh for c in checks if c.reason == "E"]
    stop = stop_wh if stop_wh is not None else (ends[-1] if ends else checks[-1].register_wh)
    return judge(checks, start_wh=1_000, stop_wh=stop, signing_required=required)


def test_a_clean_session_is_verified_in_any_arrival_order() -> None:
    checks = trail(6)
    assert verdict(checks).outcome is MeterData.VERIFIED
    assert verdict(list(reversed(checks))).outcome is MeterData.VERIFIED
    assert verdict(checks).breaks == ()
    # While it runs, the end record is not looked for yet.
    running = judge(checks[:-1], start_wh=1_000, stop_wh=None, signing_required=True)
    assert running.outcome is MeterData.VERIFIED


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda c: c[:2] + c[3:], "the pagination skips from T11 to T13"),
        (lambda c: [*c[:2], replace(c[2], pagination="T11"), *c[3:]], "the pagination repeats from T11 to T11"),
        (lambda c: [*c[:2], replace(c[2], pagination="T9"), *c[3:]], "the pagination goes back from T11 to T9"),
        (lambda c: [*c[:2], replace(c[2], pagination="F12"), *c[3:]], "is not in a transaction record (PG 'F12')"),
        (lambda c: [*c[:2], replace(c[2], meter_serial="MTR-2"), *c[3:]], "meter serial changes from 'MTR-1'"),
        (lambda c: [*c[:2], replace(c[2], gateway_serial="CP-9"), *c[3:]], "gateway serial changes from 'CP-1'"),
        (lambda c: c[1:], "no signed begin record, and this charger must sign"),
        (lambda c: c[:-1], "no signed end record, and this charger must sign"),
        (lambda c: [replace(c[0], reason="C"), *c[1:]], "no signed begin record"),
        (lambda c: [*c[:2], replace(c[2], reason="B"), *c[3:]], "2 begin records (T10, T12)"),
        (lambda c: [*c[:2], replace(c[2], reason="E"), *c[3:]], "2 end records (T12, T14)"),
        (lambda c: [*c[:2], replace(c[2], reason="E"), c[3], replace(c[4], reason="C")], "a record follows the end"),
        (lambda c: [replace(c[0], register_wh=1_001), *c[1:]], "signs 1001 Wh but the session started at 1000 Wh"),
        (lambda c: [*c[:2], ReadingCheck.invalid(c[2].timestamp_ms, 2_000, "bad signature"), *c[3:]], "bad signature"),
    ],
)
def test_each_broken_rule_fails_the_session(
    change: Callable[[list[ReadingCheck]], list[ReadingCheck]], needle: str
) -> None:
    v = verdict(change(trail(5)), stop_wh=3_000)
    assert v.outcome is MeterData.FAILED
    assert needle in v.detail, v.breaks


def test_the_end_record_must_sign_the_stop_register() -> None:
    v = verdict(trail(4), stop_wh=2_600)
    assert v.outcome is MeterData.FAILED
    assert "the end record signs 2500 Wh but the session stopped at 2600 Wh" in v.breaks


def test_optional_signing_allows_unsigned_sessions_but_not_broken_ones() -> None:
    unsigned = [ReadingCheck.unsigned(T0, 1_000), ReadingCheck.unsigned(T0 + MINUTE, 1_500)]
    assert verdict(unsigned, required=False).outcome is MeterData.UNSIGNED
    assert verdict(unsigned, required=True).outcome is MeterData.FAILED
    assert verdict(trail(4)[:-1], required=False).outcome is MeterData.UNSIGNED  # no end record: unproven
    gap = trail(5)[:2] + trail(5)[3:]
    assert verdict(gap, required=False).outcome is MeterData.FAILED


def test_transaction_pages() -> None:
    assert [transaction_page(p) for p in ("T1", "T0", "T123", "F1", "T01", "T", "t1", None)] == [
        1,
        0,
        123,
        None,
        None,
        None,
        None,
        None,
    ]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=3, max_value=40), st.integers(min_value=0, max_value=10**6), st.data())
def test_dropping_any_record_of_a_verified_session_fails_it(n: int, first_page: int, data: st.DataObject) -> None:
    checks = trail(n, first_page)
    assert verdict(checks).outcome is MeterData.VERIFIED
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    dropped = checks[:i] + checks[i + 1 :]
    stop = checks[-1].register_wh
    assert verdict(dropped, stop_wh=stop).outcome is MeterData.FAILED
    shuffled = data.draw(st.permutations(checks))
    assert verdict(list(shuffled)).outcome is MeterData.VERIFIED


# -- keys and algorithms ------------------------------------------------------------------------


def signer_on(curve: str) -> OcmfSigner:
    size = (CURVES[curve]().key_size + 7) // 8
    seed = hashlib.sha512(curve.encode()).digest() * 2
    key = b"\x01" + seed[1:size]  # below every curve's order
    return OcmfSigner(key, "CP-1", "MTR-1", curve=curve)


def record(signer: OcmfSigner, wh: int = 12_345, page: int = 1, tx: str = "C", minute: int = 0) -> str:
    return build_ocmf(
        signer,
        [OcmfReading(T0 + minute * MINUTE, wh, tx)],
        pagination=page,
        charge_point_id="CP-1",
        identification=Identification("1A2B3C4D", ("RFID_PLAIN", "OCPP_AUTH")),
    )


@pytest.mark.parametrize("curve", sorted(CURVES))
def test_every_curve_signs_and_verifies(curve: str) -> None:
    signer = signer_on(curve)
    text = record(signer)
    assert f'"SA":"{signer.algorithm}"' in text and signer.algorithm in SUPPORTED_ALGORITHMS
    assert verify_ocmf(text, signer.public_key_hex).readings[0].energy_wh == 12_345
    with pytest.raises(OcmfSignatureInvalid):
        verify_ocmf(text.replace('"RV":12.345', '"RV":12.346'), signer.public_key_hex)
    assert parse_algorithm(signer.algorithm) == (curve, "SHA256")


@pytest.mark.parametrize("curve", [SECP256R1, "secp256k1", "brainpoolP384r1"])
def test_sha512_records_verify(curve: str) -> None:
    signer = signer_on(curve)
    payload = record(signer).split("|")[1]
    sa = algorithm(curve, "SHA512")
    sig = signer._key.sign(payload.encode(), ec.ECDSA(hashes.SHA512()))
    text = f'OCMF|{payload}|{{"SA":"{sa}","SD":"{sig.hex().upper()}"}}'
    assert verify_ocmf(text, signer.public_key).readings[0].energy_wh == 12_345
    key = MeterKey.load(signer.public_key_der)
    assert not key.verify(sig, payload.encode(), algorithm(curve, "SHA256"))


def test_unsupported_and_mismatched_algorithms_are_refused() -> None:
    for sa in ("ECDSA-secp192k1-SHA256", "RSA-2048-SHA256", "ECDSA-secp256r1-SHA1", "ECDSA-secp256r1"):
        with pytest.raises(MeterKeyError):
            parse_algorithm(sa)
    r1 = signer_on(SECP256R1)
    text = record(r1)
    k1 = signer_on("secp256k1")
    with pytest.raises(OcmfSignatureInvalid) as e:
        verify_ocmf(text, k1.public_key_hex)
    assert "signed with ECDSA-secp256r1-SHA256 but the registered key is on secp256k1" in e.value.cause


def test_keys_load_from_every_encoding() -> None:
    r1 = signer_on(SECP256R1)
    pub = r1._key.public_key()
    der = r1.public_key_der
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    point = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    for given_key, curve in (
        (der, None),
        (der.hex(), None),
        ("0x" + der.hex().upper(), None),
        (base64.b64encode(der).decode(), None),
        (pem, None),
        (pem.decode(), None),
        (point, SECP256R1),
        (point[1:], SECP256R1),
    ):
        key = MeterKey.load(given_key, curve)
        assert (key.der, key.curve, key.address) == (der, SECP256R1, None)
    k1 = MeterKey.load(DEVICE_SIGNER.public_key_der)
    assert k1.address == DEVICE.address
    with pytest.raises(MeterKeyError):
        MeterKey.load(der, "secp256k1")  # the key is on another curve
    with pytest.raises(MeterKeyError):
        MeterKey.load("not a key at all")
    with pytest.raises(InvalidInput):
        MeterKey.load(bytes(65), SECP256R1)  # not a point on the curve


def test_secp256k1_accepts_both_s_values_and_recovers_the_device_key() -> None:
    payload = record(DEVICE_SIGNER).split("|")[1].encode()
    key = MeterKey.load(DEVICE_SIGNER.public_key_der)
    high = low = 0
    for i in range(40):
        message = payload + str(i).encode()
        r, s = decode_dss_signature(DEVICE_SIGNER.sign(message))
        low_sig, high_sig = encode_dss_signature(r, min(s, N_K1 - s)), encode_dss_signature(r, max(s, N_K1 - s))
        assert key.verify(low_sig, message, "ECDSA-secp256k1-SHA256")
        assert key.verify(high_sig, message, "ECDSA-secp256k1-SHA256")
        assert not key.verify(high_sig, message + b"x", "ECDSA-secp256k1-SHA256")
        found = [k.address for k in recover_secp256k1(high_sig if i % 2 else low_sig, message)]
        assert DEVICE.address in found and len(found) <= 2
        high += s > N_K1 // 2
        low += s <= N_K1 // 2
    assert high and low, "both halves were exercised"
    assert not key.verify(b"\x30\x00", payload, "ECDSA-secp256k1-SHA256")
    assert recover_secp256k1(b"junk", payload) == []


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["secp256k1", SECP256R1]), st.integers(min_value=0, max_value=10**9), st.data())
def test_our_verification_agrees_with_pyocmfs(curve: str, wh: int, data: st.DataObject) -> None:
    """The hot path's check (cached key, libsecp256k1 or OpenSSL) says what pyocmf's reference says,
    for the record as signed and with one byte of its payload changed."""
    signer = signer_on(curve)
    text = record(signer, wh)
    payload = text.split("|")[1]
    i = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    c = data.draw(st.sampled_from("0123456789"))
    edited = text.replace(payload, payload[:i] + c + payload[i + 1 :], 1)
    for candidate in (text, edited):
        try:
            doc = OCMF.from_string(candidate, strict=True)
        except PyOCMFError:
            continue  # an edit that breaks the record's format is not a question for the signature
        reference = doc.verify_signature(signer.public_key_hex)
        try:
            verify_ocmf(candidate, signer.public_key)
            ours = True
        except OcmfSignatureInvalid:
            ours = False
        except OcmfError as exc:  # refused before the signature: Electra reads fields stricter
            assert candidate != text and not reference, exc.cause
            continue
        assert ours == reference
        if candidate == text:
            assert ours


# -- the session service verifying on receipt, on SQLite and PostgreSQL ---------------------------


class Meter:
    """A charger's meter in a test: signs each reading as its own OCMF record, counting pages."""

    def __init__(self, key: bytes = bytes(DEVICE.key), curve: str = "secp256k1", serial: str = "CP-1-MTR-1") -> None:
        self.signer = OcmfSigner(key, "CP-1", serial, curve=curve)
        self.page = 0

    def read(self, minute: int, wh: int, tx: str = "C", *, send_key: bool = False, skip: int = 0) -> RegisterReading:
        self.page += 1 + skip
        text = record(self.signer, wh, self.page, tx, minute)
        key = self.signer.public_key_hex if send_key else None
        return RegisterReading(T0 + minute * MINUTE, wh, None, SignedMeter(text, self.signer.algorithm, "OCMF", key))


def service_run(
    engine: Engine, body: Callable[[SessionService], Awaitable[Any]], signing: str = REQUIRED, device: bool = True
) -> Any:
    async def main() -> Any:
        from electra.store.writer import GroupCommitWriter

        writer = GroupCommitWriter(engine)
        await writer.start()
        meter = MeterDataVerifier(MeterKeyBook(engine), signing)
        if device:
            meter.know_device("CP-1", DEVICE.address)
        try:
            return await body(SessionService(engine, writer, TokenRegistry(engine), meter=meter))
        finally:
            await writer.stop()

    return asyncio.run(main())


def readings_of(engine: Engine, session_id: int) -> list[Any]:
    with engine.connect() as c:
        return list(
            c.execute(
                select(MeterValueRecord.__table__)
                .where(MeterValueRecord.session_id == session_id)
                .order_by(MeterValueRecord.timestamp_ms)
            )
        )


def session_of(engine: Engine, session_id: int) -> Any:
    with engine.connect() as c:
        return c.execute(select(SessionRecord.__table__).where(SessionRecord.id == session_id)).one()


async def session_16(svc: SessionService, meter: Meter, *, tamper_at: int | None = None, stop_wh: int = 2_500) -> Any:
    """A 1.6 session as a signing charger sends it: StartTransaction (unsigned register), the begin
    record in MeterValues, periodic records, StopTransaction with the begin and end records again."""
    s = await svc.start("CP-1", "1.6", 1, "CARD", T0, 1_000)
    begin = meter.read(0, 1_000, "B")
    await svc.record("CP-1", s.uid, [begin])
    for minute, wh in ((1, 1_500), (2, 2_000)):
        r = meter.read(minute, wh)
        if minute == tamper_at:
            assert r.signed is not None
            r = replace(r, signed=replace(r.signed, data=r.signed.data.replace('"RV":2.000', '"RV":2.001')))
        await svc.record("CP-1", s.uid, [r])
    end = meter.read(3, stop_wh, "E")
    stop = await svc.stop("CP-1", s.uid, T0 + 3 * MINUTE, stop_wh, "EVDisconnected", [begin, end])
    return s, stop


def test_a_16_session_signed_with_the_device_key_is_verified(store_engine: Engine) -> None:
    s, stop = service_run(store_engine, lambda svc: session_16(svc, Meter()))
    assert (stop.outcome, stop.billable_wh, stop.flags) == (Outcome.APPLIED, 1_500, frozenset())
    row = session_of(store_engine, s.db_id)
    assert (row.meter_data, row.meter_data_detail, row.flags, row.billable_wh) == ("verified", None, "", 1_500)
    rows = readings_of(store_engine, s.db_id)
    assert [(r.register_wh, r.verification, r.ocmf_pagination, r.ocmf_tx) for r in rows] == [
        (1_000, "verified", "T1", "B"),  # the start row got its record from the MeterValues after it
        (1_500, "verified", "T2", "C"),
        (2_000, "verified", "T3", "C"),
        (2_500, "verified", "T4", "E"),
    ]
    assert {(r.meter_serial, r.gateway_serial) for r in rows} == {("CP-1-MTR-1", "CP-1")}
    assert all(r.signed_data and r.signed_data.startswith("OCMF|") for r in rows)


async def session_201(svc: SessionService, meter: Meter, uid: str = "tx-1", at: int = 0) -> Any:
    """A 2.0.1 session: TransactionEvent Started with the begin record, Updated, Ended with the end
    record; every record with the meter's public key, as signedMeterValue carries it."""
    begin = meter.read(at, 1_000, "B", send_key=True)
    s = await svc.start("CP-1", "2.0.1", 1, "CARD", begin.timestamp_ms, 1_000, uid=uid, signed=begin.signed)
    await svc.record("CP-1", uid, [meter.read(at + 1, 1_400, send_key=True)], seq_no=1)
    end = meter.read(at + 2, 1_900, "E", send_key=True)
    return s, await svc.stop("CP-1", uid, end.timestamp_ms, 1_900, "EVDeparted", [end], seq_no=2)


def test_a_201_session_signed_with_a_registered_secp256r1_meter_key_is_verified(store_engine: Engine) -> None:
    meter = Meter(R1_KEY, SECP256R1)
    MeterKeyBook(store_engine).put("CP-1", meter.signer.public_key, None)
    s, stop = service_run(store_engine, lambda svc: session_201(svc, meter))
    assert (stop.billable_wh, stop.flags) == (900, frozenset())
    assert session_of(store_engine, s.db_id).meter_data == "verified"
    assert [r.verification for r in readings_of(store_engine, s.db_id)] == ["verified"] * 3
    # The same session signed by the device key does not verify: the registered meter key is the only one.
    s2, stop2 = service_run(store_engine, lambda svc: session_201(svc, Meter(), uid="tx-2", at=10))
    assert Flag.METER_DATA_UNVERIFIED in stop2.flags and stop2.billable_wh is None
    detail = session_of(store_engine, s2.db_id).meter_data_detail
    assert "the public key sent with the record is not the charger's registered key" in detail


def test_a_201_session_signed_with_the_device_key_sent_along_is_verified(store_engine: Engine) -> None:
    s, stop = service_run(store_engine, lambda svc: session_201(svc, Meter()))
    assert (stop.billable_wh, session_of(store_engine, s.db_id).meter_data) == (900, "verified")


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("tampered", "the OCMF signature does not match"),
        ("wrong key", "the OCMF signature does not match"),
        ("sent key of another meter", "the public key sent with the record is not the charger's registered key"),
        ("unknown device", "no meter key is registered for this charger and its NFT device is not known"),
        ("broken pagination", "the pagination skips from T2 to T4"),
        ("no begin", "no signed begin record"),
        ("no end", "no signed end record"),
        ("meter serial", "the meter serial changes from 'CP-1-MTR-1' to 'CP-1-MTR-2'"),
        ("signed value", "the record signs 2500 Wh, the reading says 2600 Wh"),
        ("end not the stop register", "the end record signs"),
    ],
)
def test_bad_meter_data_flags_the_session_and_it_is_billed_manually_with_energy_0(
    store_engine: Engine, case: str, needle: str
) -> None:
    meter = Meter()
    other = Meter(hashlib.sha256(b"another device").digest())

    async def body(svc: SessionService) -> Any:
        s = await svc.start("CP-1", "1.6", 1, "CARD", T0, 1_000)
        begin = meter.read(0, 1_000, "B")
        if case != "no begin":
            await svc.record("CP-1", s.uid, [begin])
        mid = meter.read(1, 1_500)
        if case == "tampered":
            assert mid.signed is not None
            mid = replace(mid, signed=replace(mid.signed, data=mid.signed.data.replace('"RV":1.500', '"RV":1.600')))
        elif case == "wrong key":
            mid = other.read(1, 1_500)
        elif case == "sent key of another meter":
            sent = other.read(1, 1_500, send_key=True).signed
            assert sent is not None and mid.signed is not None
            mid = replace(mid, signed=replace(mid.signed, public_key=sent.public_key))
        await svc.record("CP-1", s.uid, [mid])
        end = meter.read(2, 2_500, "E", skip=1 if case == "broken pagination" else 0)
        if case == "meter serial":
            renamed = Meter(serial="CP-1-MTR-2")
            renamed.page = meter.page - 1
            end = renamed.read(2, 2_500, "E")
        stop_wh = 2_500
        readings = [end]
        if case == "no end":
            readings = [RegisterReading(end.timestamp_ms, 2_500)]
        elif case == "signed value":
            assert end.signed is not None
            readings, stop_wh = [RegisterReading(end.timestamp_ms, 2_600, None, end.signed)], 2_600
        elif case == "end not the stop register":
            stop_wh = 2_600  # the stop register after the signed end reading
            readings = [end]
        return s, await svc.stop("CP-1", s.uid, T0 + 3 * MINUTE, stop_wh, "Local", readings)

    s, stop = service_run(store_engine, body, device=case != "unknown device")
    assert Flag.METER_DATA_UNVERIFIED in stop.flags
    assert stop.billable_wh is None and stop.energy_wh > 0
    row = session_of(store_engine, s.db_id)
    assert row.meter_data == "failed" and needle in row.meter_data_detail, row.meter_data_detail
    assert "meter_data_unverified" in row.flags.split(",") and row.billable_wh is None

    # The bill: no automatic settlement, and the session's record carries energyWh 0.
    bill, leaf = biller(store_engine).bill(session_row_model(store_engine, s.db_id))
    assert bill.status == MANUAL and bill.reason.startswith("meter data unverified: ")
    assert leaf.energy_wh == 0 and leaf.meter_stop_wh == row.meter_stop_wh
    assert json.loads(bill.breakdown)["record"][7] == "0"


def test_invalid_readings_are_stored_with_why_and_flag_the_running_session(store_engine: Engine) -> None:
    meter = Meter()

    async def body(svc: SessionService) -> Any:
        s = await svc.start("CP-1", "1.6", 1, "CARD", T0, 1_000)
        await svc.record("CP-1", s.uid, [meter.read(0, 1_000, "B")])
        bad = meter.read(1, 1_500)
        assert bad.signed is not None
        await svc.record("CP-1", s.uid, [replace(bad, signed=replace(bad.signed, data="OCMF|{}|{}"))])
        return s

    s = service_run(store_engine, body)
    row = session_of(store_engine, s.db_id)
    assert (row.status, row.meter_data, row.flags) == ("active", "failed", "meter_data_unverified")
    stored = readings_of(store_engine, s.db_id)
    assert [r.verification for r in stored] == ["verified", "invalid"]
    assert "not a valid OCMF record" in stored[1].verification_detail


def test_a_different_second_record_for_a_reading_is_a_conflict(store_engine: Engine) -> None:
    meter = Meter()

    async def body(svc: SessionService) -> Any:
        s = await svc.start("CP-1", "1.6", 1, "CARD", T0, 1_000)
        first = meter.read(0, 1_000, "B")
        await svc.record("CP-1", s.uid, [first])
        assert await svc.record("CP-1", s.uid, [first]) == 0  # the same record again: nothing
        await svc.record("CP-1", s.uid, [meter.read(0, 1_000, "B")])  # another record, next page
        return s

    s = service_run(store_engine, body)
    assert session_of(store_engine, s.db_id).meter_data == "failed"
    stored = readings_of(store_engine, s.db_id)
    assert [(r.verification, r.verification_detail) for r in stored] == [
        ("invalid", "a second, different signed record came for this reading")
    ]
    assert '"PG":"T1"' in stored[0].signed_data, "the first record stays"


def test_unsigned_sessions_settle_where_signing_is_optional_and_not_where_required(store_engine: Engine) -> None:
    async def body(svc: SessionService) -> Any:
        s = await svc.start("CP-1", "1.6", 1, "CARD", T0, 1_000)
        await svc.record("CP-1", s.uid, [RegisterReading(T0 + MINUTE, 1_500)])
        return s, await svc.stop("CP-1", s.uid, T0 + 2 * MINUTE, 2_000, "Local")

    s, stop = service_run(store_engine, body, signing=OPTIONAL)
    assert (stop.billable_wh, session_of(store_engine, s.db_id).meter_data) == (1_000, "unsigned")
    assert [r.verification for r in readings_of(store_engine, s.db_id)] == ["unsigned"] * 3

    # The same charger made to sign by its own row: the next unsigned session is flagged.
    MeterKeyBook(store_engine).put("CP-1", None, REQUIRED)

    async def later(svc: SessionService) -> Any:
        s = await svc.start("CP-1", "1.6", 1, "CARD", T0 + 10 * MINUTE, 2_000)
        return s, await svc.stop("CP-1", s.uid, T0 + 12 * MINUTE, 2_400, "Local")

    s2, stop2 = service_run(store_engine, later, signing=OPTIONAL)
    assert stop2.billable_wh is None
    assert "no signed begin record, and this charger must sign" in session_of(store_engine, s2.db_id).meter_data_detail
    bill, leaf = biller(store_engine).bill(session_row_model(store_engine, s.db_id))
    assert (bill.reason, leaf.energy_wh) == (NO_AUTHORIZATION, 1_000), "unsigned but allowed: billed in full"


def test_checks_survive_a_restart_and_the_session_is_judged_whole(store_engine: Engine) -> None:
    meter = Meter()

    async def first_life(svc: SessionService) -> Any:
        s = await svc.start("CP-1", "1.6", 1, "CARD", T0, 1_000)
        await svc.record("CP-1", s.uid, [meter.read(0, 1_000, "B"), meter.read(1, 1_500)])
        return s

    s = service_run(store_engine, first_life)

    async def second_life(svc: SessionService) -> Any:  # nothing in memory: rebuilt from the store
        mid = meter.read(2, 2_000)
        meter.page += 1  # a record lost in between
        end = meter.read(3, 2_500, "E")
        await svc.record("CP-1", s.uid, [mid])
        return await svc.stop("CP-1", s.uid, T0 + 3 * MINUTE, 2_500, "Local", [end])

    stop = service_run(store_engine, second_life)
    assert stop.billable_wh is None
    assert "the pagination skips from T3 to T5" in session_of(store_engine, s.db_id).meter_data_detail


def test_a_verifier_reads_a_key_set_later_once_its_cache_expires(store_engine: Engine) -> None:
    clock = [0.0]
    book = MeterKeyBook(store_engine)
    verifier = MeterDataVerifier(book, REQUIRED, ttl_s=30, clock=lambda: clock[0])
    meter = Meter(R1_KEY, SECP256R1)
    text = record(meter.signer, 1_000, 1, "B")

    def check() -> ReadingCheck:
        trust = asyncio.run(verifier.trust("CP-1"))
        return verifier.check(trust, T0, 1_000, text)

    assert check().verification is Verification.INVALID  # no key yet
    book.put("CP-1", meter.signer.public_key, None)
    assert check().verification is Verification.INVALID  # the cached answer
    clock[0] = 31.0
    assert check().verification is Verification.VERIFIED
    assert check().pagination == "T1"


def test_records_that_do_not_fit_their_reading_are_invalid() -> None:
    verifier = MeterDataVerifier(MeterKeyBook(None), REQUIRED)  # type: ignore[arg-type]
    signer = signer_on(SECP256R1)
    trust = verifier.trust_from("CP-1", None)
    trust.key = signer.public_key
    text = record(signer, 1_000, 1, "B")
    assert verifier.check(trust, T0, 1_000, text).verification is Verification.VERIFIED
    assert verifier.check(trust, T0 + 999, 1_000, text).verification is Verification.VERIFIED  # within a second
    late = verifier.check(trust, T0 + 1_001, 1_000, text)
    assert (late.verification, late.detail) == (
        Verification.INVALID,
        f"the record is signed for {T0} ms, the reading is at {T0 + 1_001} ms",
    )
    assert "Electra verifies OCMF only" in verifier.check(trust, T0, 1_000, text, "EDL").detail
    b64 = base64.b64encode(text.encode()).decode()
    assert verifier.check(trust, T0, 1_000, b64).verification is Verification.VERIFIED  # 2.0.1's base64
    assert verifier.check(trust, T0, 1_000, text, public_key="zz").detail == (
        "the public key sent with the record is not a usable key"
    )
    assert verifier.check(trust, T0, 1_000, None).verification is Verification.UNSIGNED


# -- helpers for billing --------------------------------------------------------------------------


def biller(engine: Engine) -> Biller:
    authorizations = AuthorizationBook(engine, None, lambda vehicle_id: ("", ""))  # type: ignore[arg-type]
    return Biller(engine, TariffBook(engine), authorizations, {"EUSD": EUSD, "ELC": EUSD}, lambda charger_id: 7)


def session_row_model(engine: Engine, session_id: int) -> SessionRecord:
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        row = s.get(SessionRecord, session_id)
        assert row is not None
        s.expunge(row)
        return row


def test_a_verified_session_is_billed_in_full(store_engine: Engine) -> None:
    s, _ = service_run(store_engine, lambda svc: session_16(svc, Meter()))
    bill, leaf = biller(store_engine).bill(session_row_model(store_engine, s.db_id))
    # No charge authorization here (a driver's card): manual for that reason, not for its meter.
    assert (bill.status, bill.reason, leaf.energy_wh) == (MANUAL, NO_AUTHORIZATION, 1_500)


# -- the migration ------------------------------------------------------------------------------


def test_migration_0005_gives_the_models_schema_and_downgrades(store_url: str) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from electra.store.db import MIGRATIONS, make_engine, migrate
    from electra.store.models import Base

    engine = make_engine(store_url)
    try:
        migrate(engine)
        with engine.connect() as conn:  # the migrations build exactly what the models describe
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        insp = inspect(engine)
        assert "meter_keys" not in insp.get_table_names()
        assert "verification" not in {c["name"] for c in insp.get_columns("meter_values")}
        assert "meter_data" not in {c["name"] for c in insp.get_columns("sessions")}
        migrate(engine)
        assert {"verification", "ocmf_pagination", "meter_serial"} <= {
            c["name"] for c in inspect(engine).get_columns("meter_values")
        }
    finally:
        engine.dispose()
