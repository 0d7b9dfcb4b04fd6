"""Station lists in the OCPI 2.2.1 Locations format (module Locations, object Location).

Export: each charger becomes one Location with one EVSE per connector type it offers (a charger
NFT records the connector standards, not how many of each) — ``id`` the OCPP charge point id,
``country_code`` and ``party_id`` from the NFT's operator id (``DE*ELC``), ``coordinates`` in the
OCPI pattern (decimal degrees with 6 decimals), ``publish`` from the lease (public or not), EVSE
``status`` from live OCPP availability, ``max_electric_power`` from the NFT, and the charger NFT
token id in the Electra-specific ``electra_token_id`` field (OCPI allows no custom fields inside
its objects, so readers ignore it; it sits in the envelope's ``data`` items only).

Import: a list of Locations (a bare JSON array, or an OCPI response envelope ``{"data": [...],
"status_code": 1000}``) is checked and turned into :class:`ImportedLocation` read-model rows. Nothing
is registered on-chain by importing; an operator can mint from them. Errors name the location and
field (``InvalidInput``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Engine

from electra.discovery.index import Listing
from electra.domain.ranking import Availability
from electra.domain.station import ConnectorType
from electra.errors import InvalidInput

_LAT = re.compile(r"^-?[0-9]{1,2}\.[0-9]{5,7}$")
_LON = re.compile(r"^-?[0-9]{1,3}\.[0-9]{5,7}$")
_DC = ConnectorType.IEC_62196_T1_COMBO | ConnectorType.IEC_62196_T2_COMBO | ConnectorType.CHADEMO | ConnectorType.GBT_DC
_STATUS = {Availability.AVAILABLE: "AVAILABLE", Availability.OCCUPIED: "CHARGING", Availability.UNKNOWN: "UNKNOWN"}


def _e6(value: int) -> str:
    sign = "-" if value < 0 else ""
    v = abs(value)
    return f"{sign}{v // 1_000_000}.{v % 1_000_000:06d}"


def _iso(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split_operator(operator_id: str) -> tuple[str, str]:
    """``DE*ELC`` or ``DEELC`` -> (``DE``, ``ELC``)."""
    raw = operator_id.replace("*", "")
    if len(raw) != 5:
        return "ZZ", "ELC"
    return raw[:2], raw[2:]


def to_location(
    x: Listing, operator_id: str, last_updated_ms: int, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    country, party = split_operator(operator_id)
    meta = dict(extra or {})
    stamp = _iso(last_updated_ms)
    evses = []
    for n, c in enumerate((c for c in ConnectorType if c.name and x.connector_types & c), 1):
        evses.append(
            {
                "uid": f"{x.charger_id}-{n}",
                "evse_id": f"{country}*{party}*E{x.token_id}*{n}",
                "status": _STATUS[x.availability] if x.active else "INOPERATIVE",
                "connectors": [
                    {
                        "id": "1",
                        "standard": c.name,
                        "format": "CABLE" if c & _DC else "SOCKET",
                        "power_type": "DC" if c & _DC else "AC_3_PHASE",
                        "max_voltage": 920 if c & _DC else 400,
                        "max_amperage": max(1, x.max_power_w // (920 if c & _DC else 690)),
                        "max_electric_power": x.max_power_w,
                        "last_updated": stamp,
                    }
                ],
                "last_updated": stamp,
            }
        )
    return {
        "country_code": country,
        "party_id": party,
        "id": x.charger_id,
        "publish": x.public,
        "name": str(meta.get("name", x.charger_id))[:255],
        "address": str(meta.get("address", ""))[:45],
        "city": str(meta.get("city", ""))[:45],
        "country": str(meta.get("country", "")).upper()[:3] or "ZZZ",
        "coordinates": {"latitude": _e6(x.latitude_e6), "longitude": _e6(x.longitude_e6)},
        "time_zone": str(meta.get("time_zone", "UTC")),
        "evses": evses,
        "last_updated": stamp,
    }


def export_locations(listings: Iterable[Listing], operator_of: Mapping[int, str], now_ms: int) -> dict[str, Any]:
    """An OCPI response envelope of Locations, each with its Electra token id alongside."""
    data = []
    for x in listings:
        loc = to_location(x, operator_of.get(x.token_id, ""), now_ms)
        data.append(loc | {"electra_token_id": x.token_id})
    return {"data": data, "status_code": 1000, "status_message": "Success", "timestamp": _iso(now_ms)}


@dataclass(frozen=True)
class ImportedLocation:
    """A Location read from an OCPI source, reduced to what discovery and minting need."""

    country_code: str
    party_id: str
    location_id: str
    name: str
    latitude_e6: int
    longitude_e6: int
    connector_types: int
    max_power_w: int
    public: bool
    availability: Availability
    last_updated: str

    @property
    def operator_id(self) -> str:
        return f"{self.country_code}*{self.party_id}"


def _coord(value: Any, pattern: re.Pattern[str], where: str, limit: int) -> int:
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidInput(f"{where} {value!r} does not match OCPI's pattern", "write decimal degrees, e.g. 52.520008")
    try:
        e6 = int(Decimal(value).scaleb(6).to_integral_value())
    except InvalidOperation as exc:
        raise InvalidInput(f"{where} {value!r} is not a number", "write decimal degrees") from exc
    if abs(e6) > limit:
        raise InvalidInput(f"{where} {value} is out of range", "latitude -90..90, longitude -180..180")
    return e6


def from_location(doc: Any, i: int = 0) -> ImportedLocation:
    if not isinstance(doc, dict):
        raise InvalidInput(f"location #{i} is not a JSON object", "give OCPI 2.2.1 Location objects")
    where = f"location {doc.get('id', f'#{i}')!r}"
    for key in ("country_code", "party_id", "id", "publish", "coordinates", "last_updated"):
        if key not in doc:
            raise InvalidInput(f"{where} has no {key}", "OCPI 2.2.1 requires it")
    cc, party, lid = doc["country_code"], doc["party_id"], doc["id"]
    if not (isinstance(cc, str) and len(cc) == 2 and isinstance(party, str) and len(party) == 3):
        raise InvalidInput(f"{where}: country_code/party_id {cc!r}/{party!r}", "2 and 3 characters, e.g. DE / ELC")
    if not isinstance(lid, str) or not 0 < len(lid) <= 36:
        raise InvalidInput(f"{where}: id must be 1 to 36 characters", "use the charge point id")
    coords = doc["coordinates"]
    if not isinstance(coords, dict):
        raise InvalidInput(f"{where}: coordinates must be an object", "{latitude, longitude} as strings")
    lat = _coord(coords.get("latitude"), _LAT, f"{where} latitude", 90_000_000)
    lon = _coord(coords.get("longitude"), _LON, f"{where} longitude", 180_000_000)
    mask, power, statuses = 0, 0, []
    for e in doc.get("evses") or []:
        if not isinstance(e, dict):
            raise InvalidInput(f"{where}: an EVSE is not an object", "give EVSE objects")
        statuses.append(str(e.get("status", "UNKNOWN")))
        for c in e.get("connectors") or []:
            standard = c.get("standard") if isinstance(c, dict) else None
            if isinstance(standard, str) and standard in ConnectorType.__members__:
                mask |= ConnectorType[standard]
            p = c.get("max_electric_power") if isinstance(c, dict) else None
            if isinstance(p, int) and not isinstance(p, bool) and p > power:
                power = p
    if "AVAILABLE" in statuses:
        availability = Availability.AVAILABLE
    elif not statuses or all(s == "UNKNOWN" for s in statuses):
        availability = Availability.UNKNOWN
    else:
        availability = Availability.OCCUPIED
    return ImportedLocation(
        cc.upper(),
        party.upper(),
        lid,
        str(doc.get("name") or lid),
        lat,
        lon,
        mask,
        power,
        bool(doc["publish"]),
        availability,
        str(doc["last_updated"]),
    )


def import_locations(doc: Any) -> list[ImportedLocation]:
    """Locations from a bare array or an OCPI response envelope."""
    if isinstance(doc, dict):
        if "data" not in doc:
            raise InvalidInput("an OCPI envelope without data", 'give {"data": [Location, ...]} or a JSON array')
        doc = doc["data"]
    if not isinstance(doc, list):
        raise InvalidInput("the OCPI document holds no list of locations", "give a JSON array of Location objects")
    return [from_location(d, i) for i, d in enumerate(doc)]


def store_locations(engine: Engine, rows: Iterable[ImportedLocation], source: str, now_ms: int) -> int:
    """Upserts imported locations into the ``ocpi_locations`` read model; returns how many."""
    from sqlalchemy.orm import Session

    from electra.store.models import OcpiLocationRecord

    n = 0
    with Session(engine) as s, s.begin():
        for r in rows:
            s.merge(
                OcpiLocationRecord(
                    country_code=r.country_code,
                    party_id=r.party_id,
                    location_id=r.location_id,
                    name=r.name[:255],
                    latitude_e6=r.latitude_e6,
                    longitude_e6=r.longitude_e6,
                    connector_types=r.connector_types,
                    max_power_w=r.max_power_w,
                    public=r.public,
                    availability=r.availability.name.lower(),
                    last_updated=r.last_updated[:32],
                    source=source[:255],
                    imported_at_ms=now_ms,
                )
            )
            n += 1
    return n
