"""Signed meter data across a session: the OCMF rules that a session's records must keep together.

Each reading of a session carries the outcome of checking the signed record that came with it
(:class:`ReadingCheck`): ``VERIFIED`` (the signature holds under the charger's registered key and the
signed value is the reading's), ``UNSIGNED`` (no signed data came with it) or ``INVALID`` (``detail``
says why). The cryptography is done elsewhere (:mod:`electra.metering`); this module judges what the
checked records of one session say together (:func:`judge`):

1. no record is invalid;
2. the verified records, in time order, are transaction records (``PG`` ``T<n>``) whose numbers
   go up by exactly one: no gap, no repeat, no step back;
3. the first is a begin record (``TX`` ``B``) of the start register and, once the session is
   completed, the last is an end record (``TX`` ``E``) of the stop register; ``B`` and ``E`` appear
   nowhere else;
4. one meter serial (``MS``) and one gateway serial (``GS``) throughout;
5. a charger that is required to sign must prove both the start and the stop register with
   verified records (rule 3). A charger allowed to send unsigned data may leave them unproven: the
   session is then ``UNSIGNED``, which is shown, and billed.

A session that breaks a rule is ``FAILED``: the session service flags it
(``Flag.METER_DATA_UNVERIFIED``) and it is not settled automatically. Pure logic, no I/O.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

_TRANSACTION_PAGE = re.compile(r"^T(0|[1-9][0-9]{0,17})$")
DETAIL_CHARS = 255


class Verification(Enum):
    """What checking one reading's signed data found."""

    VERIFIED = "verified"
    UNSIGNED = "unsigned"
    INVALID = "invalid"


class MeterData(Enum):
    """What a completed session's meter data amounts to."""

    VERIFIED = "verified"  # start and stop registers proven by signed records, every rule kept
    UNSIGNED = "unsigned"  # no rule broken, but start or stop not proven (allowed for this charger)
    FAILED = "failed"  # a rule broken: flagged, not settled automatically


@dataclass(frozen=True)
class ReadingCheck:
    """A reading of a session and what its signed record says (fields from the record when VERIFIED)."""

    timestamp_ms: int
    register_wh: int
    verification: Verification
    detail: str = ""
    pagination: str | None = None  # PG as sent, e.g. "T7"
    reason: str | None = None  # TX of the reading in the record: B, C, E, ...
    meter_serial: str | None = None
    gateway_serial: str | None = None

    @classmethod
    def unsigned(cls, timestamp_ms: int, register_wh: int) -> ReadingCheck:
        return cls(timestamp_ms, register_wh, Verification.UNSIGNED)

    @classmethod
    def invalid(cls, timestamp_ms: int, register_wh: int, detail: str) -> ReadingCheck:
        return cls(timestamp_ms, register_wh, Verification.INVALID, detail[:DETAIL_CHARS])

    @property
    def where(self) -> str:
        return f"the reading at {self.timestamp_ms} ms ({self.register_wh} Wh)"


@dataclass(frozen=True)
class Verdict:
    outcome: MeterData
    breaks: tuple[str, ...] = ()

    @property
    def detail(self) -> str:
        """The broken rules on one line, cut to fit the store's column."""
        return "; ".join(self.breaks)[:DETAIL_CHARS]


def transaction_page(pagination: str | None) -> int | None:
    """The number of a transaction record's ``PG`` (``"T12"`` -> 12); None for anything else."""
    if pagination is None:
        return None
    m = _TRANSACTION_PAGE.match(pagination)
    return int(m.group(1)) if m else None


def judge(
    checks: Iterable[ReadingCheck],
    *,
    start_wh: int,
    stop_wh: int | None,
    signing_required: bool,
) -> Verdict:
    """The meter data of a session with these readings. ``stop_wh`` is None while it runs: then the
    end record is not looked for yet (rule 3's second half and rule 5's stop)."""
    ordered = sorted(checks, key=lambda c: (c.timestamp_ms, c.register_wh))
    breaks: list[str] = [f"{c.where}: {c.detail}" for c in ordered if c.verification is Verification.INVALID]
    signed = [c for c in ordered if c.verification is Verification.VERIFIED]
    breaks += _serial_breaks(signed, "meter serial", lambda c: c.meter_serial)
    breaks += _serial_breaks(signed, "gateway serial", lambda c: c.gateway_serial)
    breaks += _pagination_breaks(signed)
    begins = [c for c in signed if c.reason == "B"]
    ends = [c for c in signed if c.reason == "E"]
    proven_start = _edge_breaks(breaks, signed, begins, "begin", start_wh, first=True)
    proven_stop = stop_wh is not None and _edge_breaks(breaks, signed, ends, "end", stop_wh, first=False)
    if stop_wh is None and ends:
        breaks.append(f"an end record ({ends[0].pagination}) before the session stopped")
    unproven = [what for what, ok in (("begin", proven_start), ("end", proven_stop or stop_wh is None)) if not ok]
    if signing_required and unproven:
        breaks += [f"no signed {what} record, and this charger must sign" for what in unproven]
    if breaks:
        return Verdict(MeterData.FAILED, tuple(breaks))
    return Verdict(MeterData.UNSIGNED if unproven else MeterData.VERIFIED)


def _serial_breaks(signed: list[ReadingCheck], what: str, serial: Callable[[ReadingCheck], str | None]) -> list[str]:
    out = []
    for a, b in itertools.pairwise(signed):
        if serial(a) != serial(b):
            out.append(f"the {what} changes from {serial(a)!r} to {serial(b)!r} at {b.timestamp_ms} ms")
    return out


def _pagination_breaks(signed: list[ReadingCheck]) -> list[str]:
    out = []
    for c in signed:
        if transaction_page(c.pagination) is None:
            out.append(f"{c.where} is not in a transaction record (PG {c.pagination!r})")
    for a, b in itertools.pairwise(signed):
        pa, pb = transaction_page(a.pagination), transaction_page(b.pagination)
        if pa is not None and pb is not None and pb != pa + 1:
            word = "skips" if pb > pa + 1 else "repeats" if pb == pa else "goes back"
            out.append(f"the pagination {word} from {a.pagination} to {b.pagination}")
    return out


def _edge_breaks(
    breaks: list[str], signed: list[ReadingCheck], edge: list[ReadingCheck], what: str, register_wh: int, *, first: bool
) -> bool:
    """Rule 3 for the begin (``first``) or the end record; True when it proves ``register_wh``."""
    if not edge:
        return False
    if len(edge) > 1:
        breaks.append(f"{len(edge)} {what} records ({', '.join(str(c.pagination) for c in edge)})")
    record = edge[0] if first else edge[-1]
    outer = signed[0] if first else signed[-1]
    if record is not outer:
        breaks.append(f"a record {'precedes' if first else 'follows'} the {what} record ({outer.pagination})")
    if record.register_wh != register_wh:
        word = "started" if first else "stopped"
        breaks.append(f"the {what} record signs {record.register_wh} Wh but the session {word} at {register_wh} Wh")
    return len(edge) == 1 and record is outer and record.register_wh == register_wh
