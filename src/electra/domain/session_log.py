"""The session log: what happened at each charger, append-only and hash-chained, and the records
of finished sessions that get anchored on-chain.

**Events.** An event (:class:`LogEvent`) is a fact about one session at one charger: it started,
a meter value was accepted, it stopped, its record was logged. Its canonical encoding is the UTF-8
(in fact ASCII) bytes of a JSON object with sorted keys and no whitespace (docs/formats.md)::

    {"at_ms":1700000000000,"charger_id":"CP-1","data":{"register_wh":1500},"session_id":42,"type":"session.meter_value","v":1}

Only objects, integers within +/-(2^53 - 1) (exact in every JSON reader), printable-ASCII strings
(0x20-0x7E), ``true``, ``false`` and ``null`` may appear, so ``JSON.stringify`` over sorted keys
gives the same bytes. Larger numbers travel as decimal strings. Its digest is
``keccak256(canonical)``.

**Chains.** Each charger has its own chain. Event ``i`` (1, 2, 3, ... per charger) stores
``prev_hash`` = the hash of event ``i - 1`` (32 zero bytes for ``i = 1``) and
``hash = keccak256(prev_hash || digest)``. Changing, removing or reordering an event changes a hash
that a later event (or the charger's head) still holds.

**Records.** A finished session's :class:`~electra.domain.record.SessionRecord` gets a global
sequence number (1, 2, 3, ... with no gaps, in the order records are logged) and is logged as a
``session.recorded`` event on its charger's chain naming that ``seq`` and the record's ``leaf``.
Batches of consecutive records are the Merkle trees that are anchored on-chain.

:func:`verify_chain`, :func:`verify_records` and :func:`verify_batch` recompute all of it and return
every :class:`Break` they find, each with its location.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from electra.domain.keccak import keccak256
from electra.domain.merkle import merkle_root
from electra.domain.record import SessionRecord
from electra.errors import InvalidInput

GENESIS = bytes(32)
ENCODING_VERSION = 1
MAX_JSON_INT = 2**53 - 1

Scalar = int | str | bool | None


class EventType(StrEnum):
    STARTED = "session.started"
    METER_VALUE = "session.meter_value"
    STOPPED = "session.stopped"
    RECORDED = "session.recorded"


def printable(text: str, limit: int = 255) -> str:
    """A device-given string made loggable: anything outside printable ASCII becomes ``?``."""
    text = text[:limit]
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _json(value: object) -> str:
    # The bytes json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True) gives,
    # for the values the log allows (refusing the others), built directly: json.dumps plus a
    # separate validation pass cost three times as much per event.
    if type(value) is int:
        if -MAX_JSON_INT <= value <= MAX_JSON_INT:
            return int.__repr__(value)
        raise InvalidInput(f"{value} is outside +/-(2^53 - 1)", "log large numbers as decimal strings")
    if type(value) is str:
        if not (value.isascii() and value.isprintable()):
            raise InvalidInput(f"{value!r} is not printable ASCII", "pass it through printable()")
        if "\\" in value or '"' in value:
            value = value.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + value + '"'
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Mapping):
        return _object(value)
    if isinstance(value, int):  # an IntEnum: logged as its number
        return _json(int(value))
    if isinstance(value, str):  # a StrEnum: logged as its text
        return _json(str.__str__(value))
    raise InvalidInput(f"{type(value).__name__} cannot be logged", "log integers, strings, booleans or null")


# Keys start with a letter: a JavaScript object puts digit-only keys first, whatever their order.
_KNOWN_JSON: dict[tuple[str, str], tuple[str, str]] = {}  # (charger id, type) -> their JSON
_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CLEAN_KEYS: set[str] = set()  # keys already checked: the few field names the platform logs


def _object(value: Mapping[Any, object]) -> str:
    for key in value:
        if key not in _CLEAN_KEYS:
            if type(key) is not str or not _KEY.fullmatch(key):
                raise InvalidInput(
                    f"key {key!r} is not a lower-case snake_case name", "name data fields like register_wh"
                )
            if len(_CLEAN_KEYS) < 4096:
                _CLEAN_KEYS.add(key)
    parts = []
    for key in sorted(value):
        v = value[key]
        if type(v) is int and -MAX_JSON_INT <= v <= MAX_JSON_INT:
            parts.append(f'"{key}":{v}')
        else:
            parts.append(f'"{key}":{_json(v)}')
    return "{" + ",".join(parts) + "}"


def canonical_json(obj: Mapping[str, object]) -> bytes:
    """The canonical bytes of a JSON object (see the module docstring)."""
    return _json(obj).encode("ascii")


@dataclass(frozen=True)
class LogEvent:
    charger_id: str
    type: str  # an EventType value
    session_id: int
    at_ms: int
    data: Mapping[str, Scalar] = field(default_factory=dict, hash=False)

    def canonical(self) -> bytes:
        # What canonical_json() gives for the whole event, with its keys written in sorted order.
        # The charger id and the type repeat from event to event: their JSON is remembered.
        known = _KNOWN_JSON.get((self.charger_id, self.type))
        if known is None:
            known = (_json(self.charger_id), _json(str(self.type)))
            if len(_KNOWN_JSON) < 65_536:
                _KNOWN_JSON[(self.charger_id, self.type)] = known
        at_ms: object = self.at_ms
        session_id: object = self.session_id
        if not (type(at_ms) is int and 0 <= at_ms <= MAX_JSON_INT):
            at_ms = _json(at_ms)
        if not (type(session_id) is int and 0 <= session_id <= MAX_JSON_INT):
            session_id = _json(session_id)
        return (
            f'{{"at_ms":{at_ms},"charger_id":{known[0]},"data":{_object(self.data)},'
            f'"session_id":{session_id},"type":{known[1]},"v":{ENCODING_VERSION}}}'
        ).encode("ascii")


def chain_hash(prev_hash: bytes, digest: bytes) -> bytes:
    return keccak256(prev_hash + digest)


class ChainHead(NamedTuple):
    """The last event of a charger's chain: its index and hash (0 and GENESIS before any)."""

    last_index: int
    last_hash: bytes


EMPTY_HEAD = ChainHead(0, GENESIS)


class ChainedEvent(NamedTuple):  # a tuple, not a frozen dataclass: made once per logged event, 4x cheaper
    """An event as the log stores it. ``event_id`` is its global position in the log (None until stored)."""

    charger_id: str
    chain_index: int
    type: str
    session_id: int
    canonical: bytes
    prev_hash: bytes
    hash: bytes
    event_id: int | None = None

    @property
    def digest(self) -> bytes:
        return keccak256(self.canonical)

    def content(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.canonical)
        return loaded


def encode(event: LogEvent) -> tuple[LogEvent, bytes, bytes]:
    """An event with its canonical bytes and digest, ready for :func:`chain`."""
    canonical = event.canonical()
    return event, canonical, keccak256(canonical)


def chain(heads: dict[str, ChainHead], encoded: Iterable[tuple[LogEvent, bytes, bytes]]) -> list[ChainedEvent]:
    """Links encoded events (:func:`encode`) onto their chargers' chains, in order, after the
    heads given (:data:`EMPTY_HEAD` for a charger not in ``heads``), and moves ``heads`` on."""
    out: list[ChainedEvent] = []
    for event, canonical, digest in encoded:
        charger_id = event.charger_id
        index, prev = heads.get(charger_id, EMPTY_HEAD)
        h = keccak256(prev + digest)
        out.append(ChainedEvent(charger_id, index + 1, str(event.type), event.session_id, canonical, prev, h))
        heads[charger_id] = ChainHead(index + 1, h)
    return out


# -- verification ----------------------------------------------------------------------------------


class BreakKind(StrEnum):
    HASH_MISMATCH = "hash mismatch"  # an event's content or hash was changed after it was logged
    CONTENT_MISMATCH = (
        "content mismatch"  # stored columns disagree with the canonical bytes, or these are not canonical
    )
    MISSING_PREDECESSOR = "missing predecessor"  # the event before it was removed, edited or replaced
    REORDER = "reorder"  # events or records moved out of their logged order
    HEAD_MISMATCH = "head mismatch"  # the charger's head names another last event: the tail was cut or changed
    LEAF_MISMATCH = "leaf mismatch"  # a record's values do not give its leaf, or not the leaf that was logged
    MISSING_RECORD = "missing record"  # a sequence number has no record
    UNLOGGED_RECORD = "unlogged record"  # a record that no session.recorded event vouches for
    ROOT_MISMATCH = "root mismatch"  # a batch's records do not give its Merkle root
    # Found against the chain (electra.proofs.audit):
    ROOT_MISSING_ON_CHAIN = "root missing on-chain"  # a batch the log calls anchored is not on SessionAnchor
    ANCHOR_MISMATCH = "anchor mismatch"  # SessionAnchor holds another root or range for the batch's seqs
    ANCHOR_NOT_IN_LOG = "anchor not in the log"  # an on-chain batch of which the log has no batch
    METER_DATA_INVALID = "meter data invalid"  # signed readings not the charger's, or not the record's registers


@dataclass(frozen=True)
class Break:
    """One thing wrong in the log, and where: charger and per-charger index for events, ``seq``
    (the record's sequence number) or ``event_id`` (the event's global position), session, batch."""

    kind: BreakKind
    detail: str
    charger_id: str | None = None
    index: int | None = None
    event_id: int | None = None
    seq: int | None = None
    session_id: int | None = None
    batch_id: int | None = None

    def location(self) -> str:
        parts = []
        if self.charger_id is not None:
            parts.append(f"charger {self.charger_id}" + (f" #{self.index}" if self.index is not None else ""))
        if self.event_id is not None:
            parts.append(f"event {self.event_id}")
        if self.seq is not None:
            parts.append(f"seq {self.seq}")
        if self.session_id is not None:
            parts.append(f"session {self.session_id}")
        if self.batch_id is not None:
            parts.append(f"batch {self.batch_id}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.kind} at {self.location()}: {self.detail}"


def _content_problem(e: ChainedEvent) -> str | None:
    try:
        content = e.content()
    except (ValueError, UnicodeDecodeError):
        return "its payload is not JSON"
    if not isinstance(content, dict):
        return "its payload is not a JSON object"
    try:
        if canonical_json(content) != e.canonical:
            return "its payload is not in canonical form"
    except InvalidInput as exc:
        return f"its payload holds a value the log never writes ({exc.cause})"
    for name, column in (("charger_id", e.charger_id), ("type", e.type), ("session_id", e.session_id)):
        if content.get(name) != column:
            return f"the {name} column says {column!r}, the logged payload {content.get(name)!r}"
    return None


def verify_chain(charger_id: str, events: Sequence[ChainedEvent], head: ChainHead | None = None) -> list[Break]:
    """Walks one charger's events in index order (ties by event id) and reports every break.
    ``head``, when given, is the charger's stored head: it catches events cut from the end."""
    breaks: list[Break] = []
    by_hash = {e.hash: e for e in events}
    prev, expected, last_id = GENESIS, 1, None
    for e in events:

        def found(kind: BreakKind, detail: str, e: ChainedEvent = e) -> None:
            breaks.append(Break(kind, detail, charger_id, e.chain_index, e.event_id, session_id=e.session_id))

        problem = _content_problem(e)
        if problem is not None:
            found(BreakKind.CONTENT_MISMATCH, problem)
        if chain_hash(e.prev_hash, keccak256(e.canonical)) != e.hash:
            found(BreakKind.HASH_MISMATCH, "its content does not hash to its stored hash: it was changed after logging")
        if e.chain_index < expected:
            found(BreakKind.REORDER, f"index {e.chain_index} comes again after #{expected - 1}")
        elif e.chain_index > expected:
            missing = f"#{expected}" if e.chain_index == expected + 1 else f"#{expected}..#{e.chain_index - 1}"
            found(BreakKind.MISSING_PREDECESSOR, f"event {missing} before it is missing")
        elif e.prev_hash != prev:
            before = by_hash.get(e.prev_hash)
            if before is not None and before is not e:
                found(
                    BreakKind.REORDER, f"it was logged after #{before.chain_index}, but sits after #{e.chain_index - 1}"
                )
            elif e.chain_index == 1:
                found(BreakKind.MISSING_PREDECESSOR, "the first event does not start from the genesis hash")
            else:
                before_index = e.chain_index - 1
                found(
                    BreakKind.MISSING_PREDECESSOR,
                    f"its prev_hash is not the hash of #{before_index}: #{before_index} was edited or replaced",
                )
        if last_id is not None and e.event_id is not None and e.event_id < last_id:
            found(BreakKind.REORDER, f"its event id {e.event_id} is lower than its predecessor's ({last_id})")
        prev, expected = e.hash, max(expected, e.chain_index + 1)
        last_id = e.event_id if e.event_id is not None else last_id
    if head is not None and (head.last_index != expected - 1 or head.last_hash != prev):
        detail = (
            f"the chain's head is #{head.last_index} (0x{head.last_hash.hex()[:16]}...), the log ends at"
            f" #{expected - 1} (0x{prev.hex()[:16]}...): events at the end were removed or changed"
        )
        breaks.append(Break(BreakKind.HEAD_MISMATCH, detail, charger_id, expected - 1))
    return breaks


@dataclass(frozen=True)
class LoggedRecord:
    """A finished session's record as the log stores it."""

    seq: int
    charger_id: str
    record: SessionRecord
    leaf: bytes
    event_hash: bytes | None
    batch_id: int | None = None


@dataclass(frozen=True)
class RecordedEntry:
    """What a ``session.recorded`` event vouches for: this session's record has this seq and leaf."""

    seq: int
    session_id: int
    leaf: bytes
    charger_id: str
    index: int
    event_id: int | None
    hash: bytes


def recorded_entry(e: ChainedEvent) -> RecordedEntry | None:
    """The record a ``session.recorded`` event names (None for other events or an unreadable one)."""
    if e.type != EventType.RECORDED:
        return None
    try:
        data = e.content()["data"]
        if not isinstance(data, dict):
            return None
        seq, leaf = int(data["seq"]), bytes.fromhex(str(data["leaf"]).removeprefix("0x"))
    except (ValueError, KeyError, TypeError):
        return None
    return RecordedEntry(seq, e.session_id, leaf, e.charger_id, e.chain_index, e.event_id, e.hash)


def recorded_event(charger_id: str, seq: int, record: SessionRecord, leaf: bytes, at_ms: int) -> LogEvent:
    return LogEvent(charger_id, EventType.RECORDED, record.session_id, at_ms, {"leaf": "0x" + leaf.hex(), "seq": seq})


def verify_records(records: Iterable[LoggedRecord], logged: Mapping[bytes, RecordedEntry]) -> list[Break]:
    """Checks records (any order) against their values and the ``session.recorded`` events that
    logged them (``logged``, keyed by event hash): every seq from 1 to the highest is there once,
    each record's values give its leaf, and each sits at the seq, with the leaf, its event logged."""
    breaks: list[Break] = []
    by_seq: dict[int, LoggedRecord] = {}
    used: set[bytes] = set()
    for r in sorted(records, key=lambda r: r.seq):
        sid = r.record.session_id

        def found(kind: BreakKind, detail: str, r: LoggedRecord = r, sid: int = sid) -> None:
            breaks.append(Break(kind, detail, r.charger_id, seq=r.seq, session_id=sid, batch_id=r.batch_id))

        if r.seq in by_seq:
            found(BreakKind.REORDER, f"seq {r.seq} is also held by session {by_seq[r.seq].record.session_id}")
        by_seq.setdefault(r.seq, r)
        values_leaf = r.record.leaf()
        if values_leaf != r.leaf:
            found(BreakKind.LEAF_MISMATCH, "its values do not hash to its stored leaf: the record was edited")
        entry = logged.get(r.event_hash) if r.event_hash is not None else None
        if entry is None:
            found(BreakKind.UNLOGGED_RECORD, "no session.recorded event in the log vouches for it")
            continue
        used.add(entry.hash)
        if entry.session_id != sid:
            found(BreakKind.REORDER, f"its event logged session {entry.session_id}, not {sid}")
        elif entry.seq != r.seq:
            found(BreakKind.REORDER, f"it was logged at seq {entry.seq} (charger {entry.charger_id} #{entry.index})")
        if entry.leaf != values_leaf:
            found(
                BreakKind.LEAF_MISMATCH,
                f"its values do not give the leaf logged at charger {entry.charger_id} #{entry.index}",
            )
    top = max([*by_seq, *(e.seq for e in logged.values())], default=0)
    orphans = {e.seq: e for h, e in logged.items() if h not in used}
    for seq in range(1, top + 1):
        if seq in by_seq:
            continue
        e = orphans.get(seq)
        if e is not None:
            detail = f"logged at charger {e.charger_id} #{e.index}, but the record is gone"
            breaks.append(Break(BreakKind.MISSING_RECORD, detail, e.charger_id, e.index, e.event_id, seq, e.session_id))
        else:
            breaks.append(Break(BreakKind.MISSING_RECORD, "no record and no event holds this seq", seq=seq))
    return breaks


def verify_batch(
    batch_id: int, first_seq: int, last_seq: int, count: int, root: bytes, records: Sequence[LoggedRecord]
) -> list[Break]:
    """A batch's records (those with seq in [first_seq, last_seq]) must be all there and give its root,
    leaves recomputed from their values."""
    seqs = sorted(r.seq for r in records)
    if count != last_seq - first_seq + 1 or seqs != list(range(first_seq, last_seq + 1)):
        detail = f"it covers seq {first_seq}..{last_seq} ({count} records) but holds {len(seqs)}"
        return [Break(BreakKind.MISSING_RECORD, detail, seq=first_seq, batch_id=batch_id)]
    if merkle_root([r.record.leaf() for r in records]) != root:
        detail = f"its records (seq {first_seq}..{last_seq}) no longer give its Merkle root"
        return [Break(BreakKind.ROOT_MISMATCH, detail, seq=first_seq, batch_id=batch_id)]
    return []
