"""Meter values from OCPP payloads to integer Wh register readings, for 1.6 and 2.0.1 alike.

Only the energy import register counts (measurand ``Energy.Active.Import.Register``, the default
when a sampled value names none) summed over phases, that is a sampled value with no phase.
Units: Wh, or kWh converted exactly with decimals (1.6 sends strings, 2.0.1 numbers, possibly
with a power-of-ten multiplier). A fraction of a Wh is cut off: never bill energy the register
has not counted. Signed meter data (1.6 ``format: SignedData``; 2.0.1 ``signedMeterValue``) is
carried along with the reading of the same instant.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from electra.errors import InvalidInput

ENERGY = "Energy.Active.Import.Register"


@dataclass(frozen=True)
class SignedMeter:
    data: str
    method: str | None = None
    encoding: str | None = None
    public_key: str | None = None


@dataclass(frozen=True)
class RegisterReading:
    timestamp_ms: int
    register_wh: int
    context: str | None = None
    signed: SignedMeter | None = None


def parse_time_ms(value: str) -> int:
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except (ValueError, AttributeError) as exc:
        raise InvalidInput(f"timestamp {value!r} is not ISO 8601", "send e.g. 2026-11-22T10:00:00Z") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)  # OCPP times are UTC
    return int(t.timestamp() * 1000)


MAX_MULTIPLIER = 12  # OCPP 2.0.1 unitOfMeasure.multiplier is a power of ten; kilo, mega and giga are the real ones
MAX_REGISTER_DIGITS = 15  # 10^15 Wh: more than any meter counts, and a bound on the integer built


def to_wh(value: Any, unit: str | None, multiplier: int = 0) -> int:
    try:
        d = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidInput(f"meter value {value!r} is not a number", "send the register as a decimal") from exc
    if not d.is_finite():
        raise InvalidInput(f"meter value {value!r} is not finite", "send the register as a decimal")
    if not -MAX_MULTIPLIER <= multiplier <= MAX_MULTIPLIER:
        raise InvalidInput(f"unit multiplier {multiplier}", f"send a power of ten within ±{MAX_MULTIPLIER}")
    u = unit or "Wh"
    if u not in ("Wh", "kWh"):
        raise InvalidInput(f"energy unit {u!r}", "send Wh or kWh")
    # Bounded before any integer is built: "1E999999999" would otherwise become a billion digits.
    if d and d.adjusted() + multiplier + (3 if u == "kWh" else 0) >= MAX_REGISTER_DIGITS:
        raise InvalidInput(f"meter value {value!r} {u} is beyond any meter", "send the register in Wh or kWh")
    d = d.scaleb(multiplier)
    if u == "kWh":
        d *= 1000
    wh = int(d.to_integral_value(rounding=ROUND_FLOOR))
    if wh < 0:
        raise InvalidInput(f"negative meter register {wh} Wh", "meter registers count up from 0")
    return wh


def readings_v16(meter_value: list[dict[str, Any]]) -> list[RegisterReading]:
    out: list[RegisterReading] = []
    for mv in meter_value:
        ts = parse_time_ms(mv["timestamp"])
        register: int | None = None
        context: str | None = None
        signed: SignedMeter | None = None
        for sv in mv.get("sampled_value", []):
            if sv.get("measurand", ENERGY) != ENERGY or sv.get("phase"):
                continue
            if sv.get("format") == "SignedData":
                signed = SignedMeter(data=sv["value"])
                continue
            register = to_wh(sv["value"], sv.get("unit"))
            context = sv.get("context")
        if register is not None:
            out.append(RegisterReading(ts, register, context, signed))
    return out


def readings_v201(meter_value: list[dict[str, Any]]) -> list[RegisterReading]:
    out: list[RegisterReading] = []
    for mv in meter_value:
        ts = parse_time_ms(mv["timestamp"])
        for sv in mv.get("sampled_value", []):
            if sv.get("measurand", ENERGY) != ENERGY or sv.get("phase"):
                continue
            unit = sv.get("unit_of_measure") or {}
            register = to_wh(sv["value"], unit.get("unit"), int(unit.get("multiplier", 0)))
            smv = sv.get("signed_meter_value")
            signed = (
                SignedMeter(
                    data=smv["signed_meter_data"],
                    method=smv.get("signing_method"),
                    encoding=smv.get("encoding_method"),
                    public_key=smv.get("public_key"),
                )
                if smv
                else None
            )
            out.append(RegisterReading(ts, register, sv.get("context"), signed))
            break
    return out
