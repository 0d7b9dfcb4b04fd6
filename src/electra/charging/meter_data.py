"""Signed meter data on receipt: each reading's OCMF record checked against the charger's registered key.

The registered key of a charger is, in this order:

1. a meter key registered for it in the store (``meter_keys``, set with ``electra station
   meter-key``), e.g. the secp256r1 key of a certified (Eichrecht) meter; then only that key counts;
2. otherwise its NFT device key: the secp256k1 key whose Ethereum address is the ``device`` of the
   charger NFT. The NFT holds the address, not the key, so the key is learned from the first record
   that proves it: the 2.0.1 ``publicKey`` sent with the record if its address is the device's, or
   the key recovered from the signature (1.6 sends no key). Either way it must have the device's
   address, and later records are checked against the learned key.

A key sent with the record (2.0.1 ``signedMeterValue.publicKey``) is trusted only if it is the
registered one; any other key makes the reading invalid, whether or not its signature holds.

Parsed keys are kept per charger (:class:`MeterTrust`), so checking a record is one OCMF parse and
one signature check. Every ``ttl_s`` one query looks whether any row of ``meter_keys`` changed;
only then are the chargers' rows read again: that is how a key set with the CLI reaches a running
central system. The session rules over all of a session's records are
:func:`electra.domain.meter_data.judge`'s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyocmf import OCMF, PyOCMFError
from pyocmf.crypto.verification import decode_signature_data
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from electra.domain.meter_data import ReadingCheck, Verification
from electra.errors import InvalidInput
from electra.metering.keys import SECP256K1, MeterKey, MeterKeyError, parse_algorithm, recover_secp256k1
from electra.metering.ocmf import check_signature, energy_reading, parse_ocmf
from electra.store.models import MeterKeyRecord

REQUIRED, OPTIONAL = "required", "optional"
SIGNING_POLICIES = (REQUIRED, OPTIONAL)
# How far the signed time (OCMF TM, milliseconds) may be from the OCPP reading's timestamp (which
# many chargers send in whole seconds).
TIME_TOLERANCE_MS = 1_000
_SENT_KEYS_KEPT = 10_000


@dataclass(frozen=True)
class MeterKeyEntry:
    """A charger's row in ``meter_keys``: its registered meter key (None: its NFT device key) and its
    signing policy (None: the platform's default)."""

    charger_id: str
    public_key: MeterKey | None
    signing: str | None
    updated_at_ms: int


class MeterKeyBook:
    """The registered meter keys and signing policies, in the store."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def get(self, charger_id: str) -> MeterKeyEntry | None:
        with Session(self.engine) as s:
            row = s.get(MeterKeyRecord, charger_id)
            if row is None:
                return None
            return MeterKeyEntry(
                row.charger_id,
                MeterKey.load(row.public_key) if row.public_key else None,
                row.signing,
                row.updated_at_ms,
            )

    def stamp(self) -> tuple[int, int]:
        """(rows, sum of their update times) of the whole table: every put changes it, as a put
        moves its row's update time forward."""
        with self.engine.connect() as conn:
            rows, total = conn.execute(
                select(func.count(), func.coalesce(func.sum(MeterKeyRecord.updated_at_ms), 0))
            ).one()
        return int(rows), int(total)

    def put(self, charger_id: str, public_key: MeterKey | None, signing: str | None) -> MeterKeyEntry:
        """Registers ``public_key`` (None: the NFT device key) and ``signing`` (None: the default)."""
        if signing is not None and signing not in SIGNING_POLICIES:
            raise InvalidInput(f"signing policy {signing!r}", "use required or optional")
        now = int(self.clock() * 1000)
        with Session(self.engine) as s, s.begin():
            row = s.get(MeterKeyRecord, charger_id)
            if row is None:
                row = MeterKeyRecord(charger_id=charger_id)
                s.add(row)
            else:
                now = max(now, row.updated_at_ms + 1)
            row.public_key = public_key.hex if public_key is not None else None
            row.curve = public_key.curve if public_key is not None else None
            row.signing = signing
            row.updated_at_ms = now
        return MeterKeyEntry(charger_id, public_key, signing, now)


@dataclass
class MeterTrust:
    """What a charger's meter data is checked against, as the session service holds it."""

    charger_id: str
    signing_required: bool
    key: MeterKey | None  # a registered meter key
    device: str | None  # the NFT's device address
    fetched_at: float = 0.0  # when it was read from the store (the verifier's clock)
    learned: MeterKey | None = field(default=None, repr=False)  # the device's key, once proven

    @property
    def source(self) -> str:
        if self.key is not None:
            return "meter key"
        return "device" if self.device is not None else "none"


class MeterDataVerifier:
    def __init__(
        self,
        book: MeterKeyBook,
        signing_default: str = REQUIRED,
        ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if signing_default not in SIGNING_POLICIES:
            raise InvalidInput(f"signing policy {signing_default!r}", "use required or optional")
        self.book = book
        self.signing_default = signing_default
        self.ttl_s = ttl_s
        self.clock = clock
        self.devices: dict[str, str | None] = {}  # charger id -> NFT device address, from admission
        self._trust: dict[str, MeterTrust] = {}
        self._stamp: tuple[int, int] | None = None  # (rows, last update) of meter_keys when last read
        self._stamp_at = float("-inf")
        self._keys: dict[str, MeterKey] = {}  # registered keys, parsed
        self._learned: dict[str, tuple[str, MeterKey]] = {}  # charger -> (device, its key), once proven
        self._sent_keys: dict[str, MeterKey | None] = {}  # a publicKey as sent -> parsed (None: unusable)

    def know_device(self, charger_id: str, device: str | None) -> None:
        """The charger's NFT device address, as the gateway read it at admission."""
        if self.devices.get(charger_id) != device:
            self.devices[charger_id] = device
            self._trust.pop(charger_id, None)

    def fresh(self, charger_id: str) -> MeterTrust | None:
        """The charger's trust as held, unless the store may have changed since it was read."""
        if self.clock() - self._stamp_at >= self.ttl_s:
            return None
        return self._trust.get(charger_id)

    async def trust(self, charger_id: str) -> MeterTrust:
        if self.clock() - self._stamp_at >= self.ttl_s:
            # One look at the whole table per ttl_s, whatever the number of chargers: only if a
            # row changed are the chargers' rows read again (each once, when next needed).
            self._stamp_at = self.clock()
            stamp = await asyncio.to_thread(self.book.stamp)
            if stamp != self._stamp:
                self._stamp = stamp
                self._trust.clear()
        t = self._trust.get(charger_id)
        if t is None:
            entry = await asyncio.to_thread(self.book.get, charger_id)
            t = self.trust_from(charger_id, entry)
        return t

    def trust_from(self, charger_id: str, entry: MeterKeyEntry | None) -> MeterTrust:
        key = entry.public_key if entry is not None else None
        old = self._keys.get(charger_id)
        if key is not None and old is not None and old.same_as(key):
            key = old  # the parsed key already held
        if key is not None:
            self._keys[charger_id] = key
        signing = (entry.signing if entry is not None else None) or self.signing_default
        t = MeterTrust(charger_id, signing == REQUIRED, key, self.devices.get(charger_id), self.clock())
        learned = self._learned.get(charger_id)
        if key is None and learned is not None and learned[0] == t.device:
            t.learned = learned[1]
        self._trust[charger_id] = t
        return t

    def check(
        self,
        trust: MeterTrust,
        timestamp_ms: int,
        register_wh: int,
        data: str | None,
        encoding: str | None = None,
        public_key: str | None = None,
    ) -> ReadingCheck:
        """What the signed data that came with the reading ``register_wh`` at ``timestamp_ms`` proves."""
        if data is None:
            return ReadingCheck.unsigned(timestamp_ms, register_wh)
        try:
            return self._check(trust, timestamp_ms, register_wh, data, encoding, public_key)
        except InvalidInput as exc:
            return ReadingCheck.invalid(timestamp_ms, register_wh, exc.cause)

    def _check(
        self,
        trust: MeterTrust,
        timestamp_ms: int,
        register_wh: int,
        data: str,
        encoding: str | None,
        public_key: str | None,
    ) -> ReadingCheck:
        if encoding not in (None, "", "OCMF"):
            raise InvalidInput(f"signed meter data encoded as {encoding!r}; Electra verifies OCMF only")
        doc, record = parse_ocmf(data)
        sent = self._sent_key(public_key) if public_key else None
        key = trust.key or trust.learned or self._learn(trust, doc, record.payload_json, sent)
        if sent is not None and not sent.same_as(key):
            raise InvalidInput("the public key sent with the record is not the charger's registered key")
        check_signature(doc, record, key)
        reading = energy_reading(record)
        if reading is None:
            raise InvalidInput("the record has no active energy import reading")
        if reading.energy_wh != register_wh:
            raise InvalidInput(f"the record signs {reading.energy_wh} Wh, the reading says {register_wh} Wh")
        if abs(reading.time_ms - timestamp_ms) > TIME_TOLERANCE_MS:
            raise InvalidInput(f"the record is signed for {reading.time_ms} ms, the reading is at {timestamp_ms} ms")
        return ReadingCheck(
            timestamp_ms,
            register_wh,
            Verification.VERIFIED,
            pagination=_cut(record.pagination, 24),
            reason=_cut(reading.reason, 8),
            meter_serial=_cut(record.meter_serial, 64),
            gateway_serial=_cut(record.gateway_serial, 64),
        )

    def _sent_key(self, text: str) -> MeterKey:
        if text not in self._sent_keys:
            if len(self._sent_keys) >= _SENT_KEYS_KEPT:
                self._sent_keys.clear()
            try:
                self._sent_keys[text] = MeterKey.load(text)
            except MeterKeyError:
                self._sent_keys[text] = None
        key = self._sent_keys[text]
        if key is None:
            raise InvalidInput("the public key sent with the record is not a usable key")
        return key

    def _learn(self, trust: MeterTrust, doc: OCMF, payload: str, sent: MeterKey | None) -> MeterKey:
        """The device key, from the key sent with the record or from the signature (secp256k1 only)."""
        if trust.device is None:
            raise InvalidInput("no meter key is registered for this charger and its NFT device is not known")
        sa = str(doc.signature.SA or "")
        curve, hash_name = parse_algorithm(sa)
        if curve != SECP256K1 or hash_name != "SHA256":
            raise InvalidInput(
                f"the record is signed with {sa}; this charger's registered key is its secp256k1 device key"
            )
        if sent is not None:
            candidates = [sent]
        else:
            try:
                signature = decode_signature_data(doc.signature.SD, doc.signature.SE)
            except PyOCMFError as exc:
                raise InvalidInput(f"cannot read the OCMF signature: {exc}") from exc
            candidates = recover_secp256k1(signature, payload.encode())
        for key in candidates:
            if (key.address or "").lower() == trust.device.lower():
                trust.learned = key
                self._learned[trust.charger_id] = (trust.device, key)
                return key
        raise InvalidInput(f"the record is not signed by the charger's device {trust.device}")


def _cut(text: str | None, n: int) -> str | None:
    return text[:n] if text is not None else None
