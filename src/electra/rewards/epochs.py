"""Usage-mining epochs: computed from anchored session records, published on RewardsDistributor,
and recomputable by anyone (`electra rewards compute|publish|show|claim|recompute`).

**Inputs, all checkable.** The records are the session log's records whose batches are anchored on
SessionAnchor; before using them the records of every batch touched are hashed again and their
Merkle root compared with the root on-chain, so a record edited in the database fails the epoch
instead of earning. Who holds each charger NFT and owns each vehicle is read from the chain at the
epoch's snapshot block. The rules (rates, off-peak hours, utilization threshold, minimum energy,
driver share) must hash to ``RewardsDistributor.rules()``, which only governance sets (zero means
the documented defaults), and the cap is the contract's ``epochCap()``.

**The epoch document** (``<data_dir>/rewards/epoch-<n>.json``) holds the parameters, every session's
reward and why, and the claims with their proofs (:meth:`RewardEpoch.to_json`). With it and the
anchored records, :func:`recompute` gets the same root or says where it differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from web3.exceptions import Web3Exception

from electra.chain.bindings import Electra
from electra.domain.merkle import merkle_root
from electra.domain.rewards import RewardEpoch
from electra.domain.usage_mining import AnchoredRecord, EpochResult, RewardParameters, compute_epoch
from electra.errors import ContractReverted, InvalidInput
from electra.store.session_log import ANCHORED, SessionLog

FORMAT = "electra.usage-mining-epoch.v1"
ZERO = b"\0" * 32


class EpochRefused(InvalidInput):
    """The epoch cannot be computed from verified inputs (a record does not match its anchor, the
    rules are not the governed ones)."""


def anchored_records(engine: Engine, electra: Electra, last_seq: int) -> list[AnchoredRecord]:
    """Records 1..last_seq of anchored batches, each batch's root checked against SessionAnchor."""
    log = SessionLog(engine)
    anchors = electra.anchors
    out: list[AnchoredRecord] = []
    for b in log.batches(ANCHORED):
        if b.first_seq > last_seq:
            continue
        records = log.records(b.first_seq, b.last_seq)
        if [r.seq for r in records] != list(range(b.first_seq, b.last_seq + 1)):
            raise EpochRefused(
                f"batch {b.id} (seqs {b.first_seq}..{b.last_seq}) is missing records", "run `electra audit`"
            )
        root = merkle_root([r.record.leaf() for r in records])
        try:
            on_chain = anchors.anchor(anchors.anchor_of(b.first_seq))
        except ContractReverted as exc:
            raise EpochRefused(
                f"batch {b.id} is not on SessionAnchor: {exc.one_line()}", "run `electra audit`"
            ) from exc
        if "0x" + root.hex() != on_chain.root or (on_chain.first_seq, on_chain.last_seq) != (b.first_seq, b.last_seq):
            raise EpochRefused(
                f"the records of seqs {b.first_seq}..{b.last_seq} do not give the anchored root {on_chain.root}",
                "run `electra audit` to find the record",
            )
        out += [AnchoredRecord(r.seq, r.record) for r in records if r.seq <= last_seq]
    return out


def _owners(electra: Electra, records: list[AnchoredRecord], block: int) -> tuple[dict[int, str], dict[int, str]]:
    stations, vehicles = electra.stations.contract, electra.vehicles.contract
    holders: dict[int, str] = {}
    owners: dict[int, str] = {}
    for r in records:
        t, v = r.record.charger_token_id, r.record.vehicle_id
        if t not in holders:
            try:
                holders[t] = str(stations.functions.ownerOf(t).call(block_identifier=block))
            except (Web3Exception, ValueError) as exc:  # a revert, or state the node no longer keeps
                raise EpochRefused(f"cannot read the holder of charger NFT {t} at block {block}: {exc}") from exc
        if v and v not in owners:
            owners[v] = str(vehicles.functions.vehicle(v).call(block_identifier=block)[1])
    return holders, owners


def governed_rules(electra: Electra, params: RewardParameters) -> None:
    """Refuses rules other than the ones governance set on RewardsDistributor."""
    on_chain = electra.rewards.rules()
    expected = params.rules_digest()
    defaults = RewardParameters(params.epoch, params.start_ms, params.end_ms, 1, 0, 0).rules_digest()
    if on_chain == ZERO:
        if expected != defaults:
            raise EpochRefused(
                "these rules are not the defaults, and governance has set no others",
                "propose them with `electra dao propose --set reward-rules=...`",
            )
    elif on_chain != expected:
        raise EpochRefused(
            f"these rules hash to 0x{expected.hex()}, governance set 0x{on_chain.hex()}",
            "compute with the governed rules",
        )


@dataclass
class EpochRun:
    params: RewardParameters
    result: EpochResult
    epoch: RewardEpoch | None  # None: nobody earned
    published: bool = False
    notes: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "parameters": json.loads(self.params.canonical()),
            "rules_digest": "0x" + self.params.rules_digest().hex(),
            "utilization_permille": {str(k): v for k, v in sorted(self.result.utilization_permille.items())},
            "total_before_cap": str(self.result.total_before_cap),
            "sessions": [
                {
                    "session_id": s.session_id,
                    "seq": s.seq,
                    "amount": str(s.amount),
                    "offpeak": s.offpeak,
                    "idle_charger": s.idle_charger,
                    "why": s.reason,
                }
                for s in self.result.sessions
            ],
            "epoch": None if self.epoch is None else self.epoch.to_json(),
        }


def compute(
    engine: Engine,
    electra: Electra,
    epoch: int,
    start_ms: int,
    end_ms: int,
    snapshot_block: int | None = None,
    rules: RewardParameters | None = None,
) -> EpochRun:
    """The epoch's rewards from what is anchored at ``snapshot_block`` (default: now)."""
    block = int(electra.client.w3.eth.block_number) if snapshot_block is None else snapshot_block
    last_seq = int(electra.anchors.contract.functions.lastAnchoredSeq().call(block_identifier=block))
    cap = int(electra.rewards.contract.functions.epochCap().call(block_identifier=block))
    base = rules or RewardParameters(epoch, start_ms, end_ms, 1, last_seq, block)
    params = replace(
        base,
        epoch=epoch,
        start_ms=start_ms,
        end_ms=end_ms,
        first_seq=1,
        last_seq=last_seq,
        snapshot_block=block,
        epoch_cap=cap,
    )
    governed_rules(electra, params)
    records = anchored_records(engine, electra, last_seq)
    holders, owners = _owners(electra, records, block)
    result = compute_epoch(params, records, holders, owners)
    run = EpochRun(params, result, result.to_epoch() if result.amounts else None)
    if run.epoch is None:
        run.notes.append("no session of this window earned a reward")
    return run


def publish(electra: Electra, run: EpochRun, data_dir: Path) -> Path:
    """Writes the epoch document, then publishes the root (the publisher's key)."""
    if run.epoch is None:
        raise InvalidInput(f"epoch {run.params.epoch} rewards nobody", "nothing to publish")
    path = document_path(data_dir, run.params.epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run.document(), indent=2) + "\n")
    electra.rewards.publish(run.epoch)
    run.published = True
    return path


def document_path(data_dir: Path, epoch: int) -> Path:
    return data_dir / "rewards" / f"epoch-{epoch}.json"


def load_document(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {path}: {exc.strerror}", "publish the epoch first, or give its document"
        ) from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}", "give the epoch document as published") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidInput(f"{path} is not a usage-mining epoch document", f"expected format {FORMAT}")
    return doc


@dataclass
class Recomputed:
    epoch: int
    root: str
    published_root: str | None
    matches: bool
    differences: list[str]


def recompute(engine: Engine, electra: Electra, document: dict[str, Any]) -> Recomputed:
    """Computes the epoch again from the anchored records and the document's parameters and
    compares the root with the one RewardsDistributor holds."""
    params = RewardParameters.from_json(document["parameters"])
    governed_rules(electra, params)
    records = anchored_records(engine, electra, params.last_seq)
    holders, owners = _owners(electra, records, params.snapshot_block)
    result = compute_epoch(params, records, holders, owners)
    root = "0x" + (result.to_epoch().root.hex() if result.amounts else ZERO.hex())
    try:
        published = electra.rewards.epoch(params.epoch).root
    except ContractReverted:
        published = None
    diffs = []
    claimed = {c["account"]: int(c["amount"]) for c in ((document.get("epoch") or {}).get("claims") or [])}
    for account in sorted(set(claimed) | set(result.amounts)):
        if claimed.get(account, 0) != result.amounts.get(account, 0):
            diffs.append(f"{account}: document {claimed.get(account, 0)}, recomputed {result.amounts.get(account, 0)}")
    return Recomputed(params.epoch, root, published, published == root, diffs)
