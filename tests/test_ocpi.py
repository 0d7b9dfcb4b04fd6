"""OCPI 2.2.1 Locations: export of charger listings, import back, and refusals that name the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from electra.discovery.index import Listing
from electra.discovery.ocpi import export_locations, import_locations, to_location
from electra.domain.ranking import Availability
from electra.errors import InvalidInput

NOW_MS = 1_795_000_000_000


@given(
    lat=st.integers(-89_999_999, 89_999_999),
    lon=st.integers(-179_999_999, 179_999_999),
    mask=st.integers(1, 2**9 - 1),
    power=st.integers(1_000, 400_000),
    public=st.booleans(),
    availability=st.sampled_from(list(Availability)),
)
def test_export_then_import_keeps_position_connectors_power_and_status(
    lat: int, lon: int, mask: int, power: int, public: bool, availability: Availability
) -> None:
    x = Listing(7, "CP-OCPI-1", lat, lon, power, mask, public=public, availability=availability)
    doc = json.loads(json.dumps(export_locations([x], {7: "DE*ELC"}, NOW_MS)))
    assert doc["status_code"] == 1000 and doc["data"][0]["electra_token_id"] == 7
    (back,) = import_locations(doc)
    assert (back.latitude_e6, back.longitude_e6) == (lat, lon)  # exact: 6 decimals both ways
    assert (back.connector_types, back.max_power_w, back.public) == (mask, power, public)
    assert back.availability is availability
    assert (back.operator_id, back.location_id) == ("DE*ELC", "CP-OCPI-1")


def test_a_location_has_the_fields_ocpi_requires() -> None:
    loc = to_location(Listing(3, "CP-1", 52_520_008, 13_404_954, 150_000, 0b1010), "DE*ELC", NOW_MS)
    for key in (
        "country_code",
        "party_id",
        "id",
        "publish",
        "address",
        "city",
        "country",
        "coordinates",
        "time_zone",
        "last_updated",
    ):
        assert key in loc
    assert loc["coordinates"] == {"latitude": "52.520008", "longitude": "13.404954"}
    assert [e["connectors"][0]["standard"] for e in loc["evses"]] == ["IEC_62196_T2", "IEC_62196_T2_COMBO"]
    assert [e["connectors"][0]["power_type"] for e in loc["evses"]] == ["AC_3_PHASE", "DC"]
    assert loc["last_updated"] == "2026-11-18T11:06:40Z"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"data": "x"}, "no list of locations"),
        ([{"id": "A"}], "has no country_code"),
        (
            [
                {
                    "country_code": "D",
                    "party_id": "ELC",
                    "id": "A",
                    "publish": True,
                    "coordinates": {},
                    "last_updated": "",
                }
            ],
            "country_code/party_id",
        ),
        (
            [
                {
                    "country_code": "DE",
                    "party_id": "ELC",
                    "id": "A",
                    "publish": True,
                    "coordinates": {"latitude": "52.5", "longitude": "13.40495"},
                    "last_updated": "",
                }
            ],
            "latitude '52.5'",
        ),
        (
            [
                {
                    "country_code": "DE",
                    "party_id": "ELC",
                    "id": "A",
                    "publish": True,
                    "coordinates": {"latitude": "95.000000", "longitude": "13.404950"},
                    "last_updated": "",
                }
            ],
            "out of range",
        ),
        ({"status_code": 1000}, "without data"),
    ],
)
def test_bad_locations_are_refused_with_the_field_named(doc: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        import_locations(doc)
