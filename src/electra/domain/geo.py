"""Coordinates as integer microdegrees, parsed from decimal text without floats."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from electra.errors import InvalidInput

MICRO = 1_000_000
MAX_LATITUDE_E6 = 90 * MICRO
MAX_LONGITUDE_E6 = 180 * MICRO


def degrees_to_e6(text: str | int | Decimal, axis: str) -> int:
    """Converts decimal degrees ("52.520008") to microdegrees, rounding half-even to 1e-6.

    ``axis`` is "latitude" or "longitude"; the range is checked for it.
    """
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as exc:
        raise InvalidInput(f"invalid {axis} {text!r}: not a number", "give decimal degrees, e.g. 52.520008") from exc
    if not value.is_finite():
        raise InvalidInput(f"invalid {axis} {text!r}: not a finite number", "give decimal degrees, e.g. 52.520008")
    e6 = int((value * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    check_e6(e6, axis)
    return e6


def check_e6(e6: int, axis: str) -> None:
    limit = MAX_LATITUDE_E6 if axis == "latitude" else MAX_LONGITUDE_E6
    if not -limit <= e6 <= limit:
        bound = limit // MICRO
        raise InvalidInput(
            f"invalid {axis} {e6_to_text(e6)}: outside -{bound}..{bound} degrees",
            "check the order (latitude first) and the sign",
        )


def e6_to_text(e6: int) -> str:
    """Microdegrees as decimal text with six places, the inverse of :func:`degrees_to_e6`."""
    sign = "-" if e6 < 0 else ""
    a = abs(e6)
    return f"{sign}{a // MICRO}.{a % MICRO:06d}"


def parse_lat_lon(text: str) -> tuple[int, int]:
    """Parses "LAT,LON" into microdegrees."""
    parts = text.split(",")
    if len(parts) != 2:
        raise InvalidInput(f"invalid position {text!r}: expected LAT,LON", "e.g. --near 52.5200,13.4050")
    return degrees_to_e6(parts[0], "latitude"), degrees_to_e6(parts[1], "longitude")
