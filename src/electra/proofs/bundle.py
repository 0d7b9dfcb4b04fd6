"""The proof bundle of one session: everything an outsider needs to check a bill against the chain.

A bundle is plain JSON (docs/formats.md#proof-bundle) with:

- the session record's ten values, named, with the leaf encoding they are hashed with;
- its leaf, its Merkle proof and the batch it belongs to (first and last seq, count, root);
- the anchor: chain id, SessionAnchor address, the batch's index on the contract, the transaction
  and block that anchored it (absent while the batch is not anchored yet);
- the StationRegistry address, where the charger NFT names the device key that signs the meter;
- the signed meter data (OCMF) that came with the session's readings, as the charger sent it.

Nothing in a bundle is trusted by the verifier (:mod:`electra.proofs.verifier`): it hashes the
values again, folds the proof, and reads the root, the anchoring transaction and the charger's
device from the chain. Reading a bundle checks its shape only; bad JSON or missing fields raise
:class:`electra.errors.InvalidInput` naming the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from electra.domain.record import LEAF_TYPES, SessionRecord
from electra.errors import InvalidInput

FORMAT = "electra.session-proof.v1"
RECORD_FIELDS = (
    "sessionId",
    "chargerTokenId",
    "vehicleId",
    "startedAtMs",
    "stoppedAtMs",
    "meterStartWh",
    "meterStopWh",
    "energyWh",
    "asset",
    "amount",
)


@dataclass(frozen=True)
class SignedReading:
    """One energy register reading with the signed meter data that carried it."""

    timestamp_ms: int
    register_wh: int
    signed_data: str
    signing_method: str | None = None
    public_key: str | None = None


@dataclass(frozen=True)
class AnchorRef:
    """Where the batch is on-chain."""

    chain_id: int
    contract: str
    batch_index: int
    tx_hash: str | None
    block_number: int | None


@dataclass(frozen=True)
class BatchRef:
    first_seq: int
    last_seq: int
    count: int
    root: str


@dataclass(frozen=True)
class ProofBundle:
    session_id: int
    seq: int
    charger_id: str
    record: SessionRecord
    leaf: str
    proof: list[str]
    batch: BatchRef | None
    anchor: AnchorRef | None
    station_registry: str | None
    meter_data: list[SignedReading] = field(default_factory=list)
    meter_key: str | None = None  # hex DER of a meter key registered with the operator (None: the NFT device key)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "session_id": self.session_id,
            "seq": self.seq,
            "charger_id": self.charger_id,
            "record": {
                "leaf_encoding": list(LEAF_TYPES),
                # Decimal strings: uint256 amounts outgrow the integers every JSON reader holds exactly.
                "values": {
                    k: v if k == "asset" else str(v) for k, v in zip(RECORD_FIELDS, self.record.values(), strict=True)
                },
            },
            "leaf": self.leaf,
            "proof": list(self.proof),
            "batch": None if self.batch is None else vars(self.batch).copy(),
            "anchor": None if self.anchor is None else vars(self.anchor).copy(),
            "station_registry": self.station_registry,
            "meter_data": [vars(r).copy() for r in self.meter_data],
            "meter_key": self.meter_key,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def loads(cls, text: str) -> ProofBundle:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"the proof bundle is not JSON: {exc}", "give the file `electra verify --out` wrote"
            ) from exc
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: Any) -> ProofBundle:
        d = _obj(data, "bundle")
        if d.get("format") != FORMAT:
            raise InvalidInput(f"not an Electra proof bundle (format {d.get('format')!r})", f"expected {FORMAT!r}")
        rec = _obj(d.get("record"), "record")
        values = _obj(rec.get("values"), "record.values")
        if list(rec.get("leaf_encoding", [])) != list(LEAF_TYPES):
            raise InvalidInput("record.leaf_encoding is not the session leaf encoding", f"expected {list(LEAF_TYPES)}")
        missing = [f for f in RECORD_FIELDS if f not in values]
        if missing:
            raise InvalidInput(f"record.values lacks {', '.join(missing)}", "give all ten record values")
        n = {f: _int(values[f], f"record.values.{f}") for f in RECORD_FIELDS if f != "asset"}
        record = SessionRecord(
            session_id=n["sessionId"],
            charger_token_id=n["chargerTokenId"],
            vehicle_id=n["vehicleId"],
            started_at_ms=n["startedAtMs"],
            stopped_at_ms=n["stoppedAtMs"],
            meter_start_wh=n["meterStartWh"],
            meter_stop_wh=n["meterStopWh"],
            energy_wh=n["energyWh"],
            asset=_hex(values["asset"], "record.values.asset", 20),
            amount=n["amount"],
        )
        batch = d.get("batch")
        anchor = d.get("anchor")
        return cls(
            session_id=_int(d.get("session_id"), "session_id"),
            seq=_int(d.get("seq"), "seq"),
            charger_id=str(d.get("charger_id", "")),
            record=record,
            leaf=_hex(d.get("leaf"), "leaf", 32),
            proof=[_hex(p, f"proof[{i}]", 32) for i, p in enumerate(_list(d.get("proof"), "proof"))],
            batch=None
            if batch is None
            else BatchRef(
                _int(_obj(batch, "batch").get("first_seq"), "batch.first_seq"),
                _int(batch.get("last_seq"), "batch.last_seq"),
                _int(batch.get("count"), "batch.count"),
                _hex(batch.get("root"), "batch.root", 32),
            ),
            anchor=None
            if anchor is None
            else AnchorRef(
                _int(_obj(anchor, "anchor").get("chain_id"), "anchor.chain_id"),
                _hex(anchor.get("contract"), "anchor.contract", 20),
                _int(anchor.get("batch_index"), "anchor.batch_index"),
                None if anchor.get("tx_hash") is None else _hex(anchor["tx_hash"], "anchor.tx_hash", 32),
                None if anchor.get("block_number") is None else _int(anchor["block_number"], "anchor.block_number"),
            ),
            station_registry=None
            if d.get("station_registry") is None
            else _hex(d["station_registry"], "station_registry", 20),
            meter_data=[_reading(r, i) for i, r in enumerate(_list(d.get("meter_data", []), "meter_data"))],
            meter_key=None if d.get("meter_key") is None else _key(d["meter_key"]),
        )


def _reading(data: Any, i: int) -> SignedReading:
    r = _obj(data, f"meter_data[{i}]")
    signed = r.get("signed_data")
    if not isinstance(signed, str) or not signed:
        raise InvalidInput(f"meter_data[{i}].signed_data is missing", "give the signed data as the charger sent it")
    return SignedReading(
        _int(r.get("timestamp_ms"), f"meter_data[{i}].timestamp_ms"),
        _int(r.get("register_wh"), f"meter_data[{i}].register_wh"),
        signed,
        None if r.get("signing_method") is None else str(r["signing_method"]),
        None if r.get("public_key") is None else str(r["public_key"]),
    )


def _key(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput("meter_key must be hex DER", "copy it from the bundle unchanged")
    try:
        bytes.fromhex(value.removeprefix("0x"))
    except ValueError as exc:
        raise InvalidInput("meter_key is not hex", "copy it from the bundle unchanged") from exc
    return value


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object", "give the bundle as `electra verify --out` wrote it")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"{where} must be a JSON array", "give the bundle as `electra verify --out` wrote it")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f"{where} must be an integer", "integers are JSON numbers or decimal strings")
    try:
        n = int(value)
    except ValueError as exc:
        raise InvalidInput(f"{where} must be an integer, got {value!r}", "write it in decimal") from exc
    if n < 0:
        raise InvalidInput(f"{where} must not be negative", "every value of a session proof is unsigned")
    return n


def _hex(value: Any, where: str, size: int) -> str:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 2 + 2 * size:
        raise InvalidInput(f"{where} must be 0x and {2 * size} hex digits", "copy it from the bundle unchanged")
    try:
        bytes.fromhex(value[2:])
    except ValueError as exc:
        raise InvalidInput(f"{where} is not hex", "copy it from the bundle unchanged") from exc
    return value
