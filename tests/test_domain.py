"""Unit tests of the pure core: coordinates, charger fields, VINs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from electra.domain.geo import degrees_to_e6, e6_to_text, parse_lat_lon
from electra.domain.station import (
    ConnectorType,
    StationSpec,
    canonical_json,
    check_charger_id,
    connector_names,
    metadata_hash,
    parse_connectors,
    parse_ocpp_versions,
    parse_operator_id,
)
from electra.domain.vehicle import normalize_vin, vin_hash
from electra.errors import InvalidInput


@given(st.integers(min_value=-90_000_000, max_value=90_000_000))
def test_latitude_text_round_trips(e6: int) -> None:
    assert degrees_to_e6(e6_to_text(e6), "latitude") == e6


@given(st.decimals(min_value=Decimal(-180), max_value=Decimal(180), places=9, allow_nan=False))
def test_longitude_rounds_to_nearest_microdegree(d: Decimal) -> None:
    e6 = degrees_to_e6(str(d), "longitude")
    assert abs(Decimal(e6) - d * 1_000_000) <= Decimal("0.5")


@pytest.mark.parametrize("bad", ["90.000001", "-91", "nan", "inf", "abc", ""])
def test_bad_latitudes_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="latitude"):
        degrees_to_e6(bad, "latitude")


def test_parse_lat_lon() -> None:
    assert parse_lat_lon("52.52,13.405") == (52_520_000, 13_405_000)
    with pytest.raises(InvalidInput, match="LAT,LON"):
        parse_lat_lon("52.52")


def test_connectors_and_versions() -> None:
    mask = parse_connectors(["ccs2", "Type2", "CHADEMO"])
    assert mask == ConnectorType.IEC_62196_T2_COMBO | ConnectorType.IEC_62196_T2 | ConnectorType.CHADEMO
    assert type(mask) is int
    assert connector_names(mask) == ["IEC_62196_T2", "IEC_62196_T2_COMBO", "CHADEMO"]
    assert parse_ocpp_versions(["1.6", "2.0.1"]) == 3
    with pytest.raises(InvalidInput, match="unknown connector"):
        parse_connectors(["scart"])
    with pytest.raises(InvalidInput, match="OCPP version"):
        parse_ocpp_versions(["1.5"])


@pytest.mark.parametrize("cid", ["", "a/b", "x" * 49, "has space", "ümlaut"])
def test_bad_charger_ids(cid: str) -> None:
    with pytest.raises(InvalidInput):
        check_charger_id(cid)


def test_operator_id() -> None:
    assert parse_operator_id("de*elc") == b"DEELC"
    assert parse_operator_id("NLABC") == b"NLABC"
    with pytest.raises(InvalidInput, match="operator id"):
        parse_operator_id("D*ELC")


def test_metadata_hash_is_over_canonical_json() -> None:
    a = {"b": 1, "a": [1, 2], "name": "Zürich"}
    b = {"name": "Zürich", "a": [1, 2], "b": 1}
    assert canonical_json(a) == b'{"a":[1,2],"b":1,"name":"Z\xc3\xbcrich"}'
    assert metadata_hash(a) == metadata_hash(b)
    assert metadata_hash(a) != metadata_hash({**a, "b": 2})


def test_station_spec_validates() -> None:
    ok = dict(
        charger_id="CP-1",
        latitude_e6=1,
        longitude_e6=2,
        max_power_w=11000,
        connector_types=2,
        ocpp_versions=1,
        operator_id=b"DEELC",
    )
    spec = StationSpec(**ok)  # type: ignore[arg-type]
    assert spec.metadata_document()["operator_id"] == "DE*ELC"
    for field, bad in [
        ("max_power_w", 0),
        ("connector_types", 1 << 9),
        ("ocpp_versions", 4),
        ("latitude_e6", 10**9),
    ]:
        with pytest.raises(InvalidInput):
            StationSpec(**{**ok, field: bad})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="256-byte"):
        StationSpec(**{**ok, "metadata_uri": "u" * 257})  # type: ignore[arg-type]


def test_vin() -> None:
    assert normalize_vin(" wvwzzze1zpp000001 ") == "WVWZZZE1ZPP000001"
    assert vin_hash("wvwzzze1zpp000001") == vin_hash("WVWZZZE1ZPP000001")
    assert len(vin_hash("WVWZZZE1ZPP000001")) == 32
    for bad in ["", "WVWZZZE1ZPP00000", "WVWZZZE1ZPP0000O1", "WVWZZZE1ZPP000001X"]:
        with pytest.raises(InvalidInput):
            normalize_vin(bad)
