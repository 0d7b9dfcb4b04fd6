"""Amounts as people write them ("12.50") and as tokens count them (base units): integers only.

A decimal string becomes base units by string arithmetic, never through a float, and an amount with
more decimals than the token has is refused rather than rounded: the user meant something the token
cannot hold.
"""

from __future__ import annotations

import re

from electra.errors import InvalidInput

MAX_UINT256 = 2**256 - 1
# ElectraUSD (and USDC-like stablecoins) count in millionths; fiat in hundredths.
STABLECOIN_DECIMALS = 6
FIAT_DECIMALS = 2

_DECIMAL = re.compile(r"(\d+)(?:\.(\d+))?")


def parse_units(text: str, decimals: int, what: str = "amount") -> int:
    """'12.5' with 6 decimals -> 12_500_000. Refuses signs, exponents, and excess decimals."""
    t = text.strip()
    m = _DECIMAL.fullmatch(t)
    if m is None:
        raise InvalidInput(f"{what} {text!r} is not a plain decimal number", "write it like 12 or 12.50")
    whole, frac = m.group(1), m.group(2) or ""
    if len(frac) > decimals:
        raise InvalidInput(
            f"{what} {t} has {len(frac)} decimals, but the token has only {decimals}",
            f"give at most {decimals} digits after the point",
        )
    units = int(whole) * int(10**decimals) + int(frac.ljust(decimals, "0") or "0")
    if units > MAX_UINT256:
        raise InvalidInput(f"{what} {t} is too large for a token amount")
    return units


def format_units(units: int, decimals: int) -> str:
    """12_500_000 with 6 decimals -> '12.5' (no trailing zeros, no exponent)."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    digits = str(frac).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def cents_to_units(amount_cents: int, decimals: int = STABLECOIN_DECIMALS) -> int:
    """Fiat cents -> stablecoin base units at par: 1 cent is 10**(decimals - 2) units (10,000 for 6)."""
    if decimals < FIAT_DECIMALS:
        raise InvalidInput(f"a stablecoin with {decimals} decimals cannot hold a cent", "use one with at least 2")
    return amount_cents * int(10 ** (decimals - FIAT_DECIMALS))
