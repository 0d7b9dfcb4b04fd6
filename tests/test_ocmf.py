"""OCMF records signed with a charger's secp256k1 device key: build, parse, verify, exact kWh."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from electra.errors import InvalidInput
from electra.metering import (
    Identification,
    OcmfError,
    OcmfReading,
    OcmfSignatureInvalid,
    OcmfSigner,
    build_ocmf,
    ethereum_address,
    format_kwh,
    ocmf_time,
    parse_kwh,
    parse_ocmf,
    verify_ocmf,
)

DEVICE = Account.from_key("0x" + "11" * 32)
OTHER = Account.from_key("0x" + "22" * 32)
T0 = 1_795_860_000_000  # 2026-11-28T10:00:00Z


def signer(account: object = DEVICE) -> OcmfSigner:
    return OcmfSigner(bytes(account.key), gateway_serial="CP-OCMF-1", meter_serial="MTR-1")  # type: ignore[attr-defined]


def record(wh_begin: int = 12_345, wh_end: int = 15_000, ident: str = "1A2B3C4D") -> str:
    return build_ocmf(
        signer(),
        [OcmfReading(T0, wh_begin, "B"), OcmfReading(T0 + 3_600_000, wh_end, "E", current_type="DC")],
        pagination=7,
        charge_point_id="CP-OCMF-1",
        identification=Identification(ident, ("RFID_PLAIN", "OCPP_AUTH")),
        tariff_text="0.40 EUR/kWh",
    )


def test_round_trip_keeps_every_field() -> None:
    text = record()
    assert text.startswith('OCMF|{"FV":"1.0","GI":"ELECTRA-SIM","GS":"CP-OCMF-1"')
    assert '"RV":12.345,' in text and '"RV":15.000,' in text
    assert '"TM":"2026-11-28T10:00:00,000+0000 S"' in text
    assert '"SA":"ECDSA-secp256k1-SHA256"' in text
    r = verify_ocmf(text, signer().public_key_hex, expected_address=DEVICE.address)
    assert r.signer_address == DEVICE.address
    assert (r.gateway_serial, r.meter_serial, r.pagination, r.charge_point_id) == (
        "CP-OCMF-1",
        "MTR-1",
        "T7",
        "CP-OCMF-1",
    )
    assert (r.identified, r.identification_type, r.identification) == (True, "ISO14443", "1A2B3C4D")
    assert r.flags == ("RFID_PLAIN", "OCPP_AUTH")
    assert r.tariff_text == "0.40 EUR/kWh"
    assert [(x.time_ms, x.energy_wh, x.reason, x.current_type) for x in r.readings] == [
        (T0, 12_345, "B", "AC"),
        (T0 + 3_600_000, 15_000, "E", "DC"),
    ]
    assert all((x.status, x.obis, x.time_status) == ("G", "1-b:1.8.0", "S") for x in r.readings)


def test_non_rfid_token_is_central_and_record_passes_pyocmf_eichrecht_checks() -> None:
    text = record(ident="vehicle-token-0001")
    doc, r = parse_ocmf(text)
    assert r.identification_type == "CENTRAL"
    assert doc.check_eichrecht(errors_only=True) == []


def test_base64_and_key_encodings_verify() -> None:
    text = record()
    pub = ec.derive_private_key(int.from_bytes(bytes(DEVICE.key), "big"), ec.SECP256K1()).public_key()
    uncompressed = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    compressed = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    b64 = base64.b64encode(text.encode()).decode()
    for key in (signer().public_key_der, uncompressed, compressed, uncompressed[1:], "0x" + uncompressed.hex()):
        assert ethereum_address(key) == DEVICE.address
        assert verify_ocmf(b64, key).signer_address == DEVICE.address


@pytest.mark.parametrize(
    ("old", "new"),
    [('"RV":15.000', '"RV":15.001'), ('"CI":"CP-OCMF-1"', '"CI":"CP-OCMF-2"'), ('"PG":"T7"', '"PG":"T8"')],
)
def test_tampered_payload_fails(old: str, new: str) -> None:
    text = record()
    assert old in text
    with pytest.raises(OcmfSignatureInvalid) as e:
        verify_ocmf(text.replace(old, new), signer().public_key_hex)
    assert "does not match" in e.value.cause
    assert isinstance(e.value, InvalidInput)


def test_other_key_fails() -> None:
    text = record()
    other = signer(OTHER)
    with pytest.raises(OcmfSignatureInvalid):
        verify_ocmf(text, other.public_key_hex)
    # The right signature, but the key is not the one registered on the NFT.
    with pytest.raises(OcmfSignatureInvalid) as e:
        verify_ocmf(text, signer().public_key_hex, expected_address=OTHER.address)
    assert OTHER.address in e.value.cause


def test_garbage_is_refused_clearly() -> None:
    for bad in ("hello", "OCMF|{}|{}", "OCMF|not json|{}"):
        with pytest.raises(OcmfError) as e:
            verify_ocmf(bad, signer().public_key_hex)
        assert "not a valid OCMF record" in e.value.cause
    with pytest.raises(OcmfError):
        verify_ocmf(record(), "zz")
    with pytest.raises(OcmfError):
        verify_ocmf(record(), bytes(10))


@given(st.integers(min_value=0, max_value=10**15))
def test_wh_to_kwh_is_exact(wh: int) -> None:
    text = format_kwh(wh)
    whole, frac = text.split(".")
    assert len(frac) == 3
    assert Decimal(text) * 1000 == wh
    assert int(whole) == wh // 1000
    assert parse_kwh(text) == wh
    assert parse_kwh(Decimal(text)) == wh


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10**6))
def test_signed_register_survives_exactly(begin: int, delta: int) -> None:
    r = verify_ocmf(record(begin, begin + delta), signer().public_key_hex)
    assert [x.energy_wh for x in r.readings] == [begin, begin + delta]


def test_kwh_edge_cases() -> None:
    assert format_kwh(0) == "0.000"
    assert format_kwh(7) == "0.007"
    assert format_kwh(12_345) == "12.345"
    assert parse_kwh("12345", "Wh") == 12_345
    for bad in (-1, 1.5, True):
        with pytest.raises(OcmfError):
            format_kwh(bad)  # type: ignore[arg-type]
    for value, unit in (("12.3456", "kWh"), ("-1.000", "kWh"), ("x", "kWh"), ("1.000", "MWh"), ("0.5", "Wh")):
        with pytest.raises(OcmfError):
            parse_kwh(value, unit)


def test_ocmf_time_format() -> None:
    assert ocmf_time(T0) == "2026-11-28T10:00:00,000+0000 S"
    assert ocmf_time(T0 + 1_234, "U") == "2026-11-28T10:00:01,234+0000 U"


def test_record_needs_readings() -> None:
    with pytest.raises(OcmfError):
        build_ocmf(signer(), [], pagination=1, charge_point_id="CP-1")
    with pytest.raises(OcmfError):
        OcmfSigner(b"short", "g", "m")
