"""What a charger is, as the registry records it, and the rules its fields must meet.

The same rules are enforced on-chain by StationRegistry; checking them here first gives users a
clear message instead of a revert.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

from eth_utils.crypto import keccak

from electra.domain.geo import check_e6
from electra.errors import InvalidInput

MAX_CHARGER_ID_LENGTH = 48
MAX_URI_LENGTH = 256
_CHARGER_ID = re.compile(r"^[A-Za-z0-9*\-_.:]+$")
_OPERATOR_ID = re.compile(r"^([A-Z]{2})\*?([A-Z0-9]{3})$")


class ConnectorType(IntFlag):
    """Connector standards as a bit mask; names follow OCPI 2.2.1 ConnectorType."""

    IEC_62196_T1 = 1 << 0
    IEC_62196_T2 = 1 << 1
    IEC_62196_T1_COMBO = 1 << 2
    IEC_62196_T2_COMBO = 1 << 3
    CHADEMO = 1 << 4
    NACS = 1 << 5
    GBT_AC = 1 << 6
    GBT_DC = 1 << 7
    DOMESTIC_F = 1 << 8


CONNECTOR_ALIASES: dict[str, ConnectorType] = {
    "type1": ConnectorType.IEC_62196_T1,
    "type2": ConnectorType.IEC_62196_T2,
    "ccs1": ConnectorType.IEC_62196_T1_COMBO,
    "ccs2": ConnectorType.IEC_62196_T2_COMBO,
    "chademo": ConnectorType.CHADEMO,
    "nacs": ConnectorType.NACS,
    "gbt-ac": ConnectorType.GBT_AC,
    "gbt-dc": ConnectorType.GBT_DC,
    "schuko": ConnectorType.DOMESTIC_F,
}


class OcppVersion(IntFlag):
    V16 = 1 << 0
    V201 = 1 << 1


OCPP_ALIASES: dict[str, OcppVersion] = {"1.6": OcppVersion.V16, "2.0.1": OcppVersion.V201}


def parse_connectors(names: Iterable[str]) -> int:
    mask = 0
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        flag = CONNECTOR_ALIASES.get(name.lower())
        if flag is None:
            try:
                flag = ConnectorType[name.upper()]
            except KeyError:
                known = ", ".join(CONNECTOR_ALIASES)
                raise InvalidInput(f"unknown connector type {name!r}", f"use one of {known}") from None
        mask |= flag
    if mask == 0:
        raise InvalidInput("no connector type given", "name at least one, e.g. --connectors ccs2,type2")
    return int(mask)


def connector_names(mask: int) -> list[str]:
    return [c.name for c in ConnectorType if c.name and mask & c]


def parse_ocpp_versions(names: Iterable[str]) -> int:
    mask = 0
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        flag = OCPP_ALIASES.get(name)
        if flag is None:
            raise InvalidInput(f"unknown OCPP version {name!r}", "use 1.6 and/or 2.0.1")
        mask |= flag
    if mask == 0:
        raise InvalidInput("no OCPP version given", "name at least one, e.g. --ocpp 1.6,2.0.1")
    return int(mask)


def ocpp_version_names(mask: int) -> list[str]:
    return [name for name, flag in OCPP_ALIASES.items() if mask & flag]


def check_charger_id(charger_id: str) -> str:
    if not charger_id:
        raise InvalidInput("empty charger id", "give the charger's OCPP identity, e.g. --charger-id CP-BER-0001")
    if len(charger_id.encode()) > MAX_CHARGER_ID_LENGTH:
        raise InvalidInput(
            f"charger id {charger_id[:20]!r}... is {len(charger_id.encode())} bytes, over {MAX_CHARGER_ID_LENGTH}",
            "use a shorter OCPP identity",
        )
    if not _CHARGER_ID.match(charger_id):
        raise InvalidInput(
            f"invalid charger id {charger_id!r}",
            "use letters, digits and - _ . : * only (it is part of the OCPP websocket URL)",
        )
    return charger_id


def parse_operator_id(text: str) -> bytes:
    """Parses an OCPI party ("DE*ELC" or "DEELC") into its 5 bytes."""
    m = _OPERATOR_ID.match(text.strip().upper())
    if not m:
        raise InvalidInput(
            f"invalid operator id {text!r}",
            "give an OCPI party: country code and party id, e.g. DE*ELC",
        )
    return (m.group(1) + m.group(2)).encode("ascii")


def operator_id_text(raw: bytes) -> str:
    s = raw.decode("ascii")
    return f"{s[:2]}*{s[2:]}"


def check_metadata_uri(uri: str) -> str:
    n = len(uri.encode())
    if n > MAX_URI_LENGTH:
        raise InvalidInput(
            f"metadata URI is {n} bytes, over the {MAX_URI_LENGTH}-byte limit",
            "host the metadata document elsewhere and give a shorter URI",
        )
    return uri


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    """The byte form that `metadataHash` is taken over: sorted keys, no spaces, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def metadata_hash(doc: Mapping[str, Any]) -> bytes:
    return keccak(canonical_json(doc))


@dataclass(frozen=True)
class StationSpec:
    """A charger as submitted for registration. Coordinates in microdegrees, power in watts."""

    charger_id: str
    latitude_e6: int
    longitude_e6: int
    max_power_w: int
    connector_types: int
    ocpp_versions: int
    operator_id: bytes
    ocpi_compliant: bool = True
    metadata_uri: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_charger_id(self.charger_id)
        check_e6(self.latitude_e6, "latitude")
        check_e6(self.longitude_e6, "longitude")
        if not 0 < self.max_power_w < 2**32:
            raise InvalidInput(f"invalid max power {self.max_power_w} W", "give the charger's rated power, > 0")
        if self.connector_types <= 0 or self.connector_types & ~0x1FF:
            raise InvalidInput(f"invalid connector mask {self.connector_types}", "see docs/contracts.md")
        if self.ocpp_versions <= 0 or self.ocpp_versions & ~0x3:
            raise InvalidInput(f"invalid OCPP version mask {self.ocpp_versions}", "use 1.6 and/or 2.0.1")
        if len(self.operator_id) != 5:
            raise InvalidInput("operator id must be 5 bytes", "give an OCPI party, e.g. DE*ELC")
        check_metadata_uri(self.metadata_uri)

    def metadata_document(self) -> dict[str, Any]:
        """The full JSON metadata: the on-chain fields plus anything the owner added."""
        doc: dict[str, Any] = dict(self.metadata)
        doc.update(
            {
                "charger_id": self.charger_id,
                "latitude_e6": self.latitude_e6,
                "longitude_e6": self.longitude_e6,
                "max_power_w": self.max_power_w,
                "connector_types": connector_names(self.connector_types),
                "ocpp_versions": ocpp_version_names(self.ocpp_versions),
                "ocpi_compliant": self.ocpi_compliant,
                "operator_id": operator_id_text(self.operator_id),
            }
        )
        return doc

    @property
    def metadata_hash(self) -> bytes:
        return metadata_hash(self.metadata_document())
