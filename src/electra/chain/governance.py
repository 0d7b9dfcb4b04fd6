"""DAO flows: propose a parameter change, vote, queue it in the timelock, execute it.

Proposals are rebuilt from the governor's own `ProposalCreated` events, so queue and execute need
nothing but the proposal id: the chain is the record, not a local file.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.logs import DISCARD

from electra.chain.bindings import Electra, TxResult
from electra.errors import InvalidInput

ELC_DECIMALS = 18


class ProposalState(IntEnum):
    """OpenZeppelin IGovernor.ProposalState."""

    PENDING = 0
    ACTIVE = 1
    CANCELED = 2
    DEFEATED = 3
    SUCCEEDED = 4
    QUEUED = 5
    EXPIRED = 6
    EXECUTED = 7


class Support(IntEnum):
    AGAINST = 0
    FOR = 1
    ABSTAIN = 2


@dataclass(frozen=True)
class Parameter:
    """A governed parameter: where it lives, its setter and its getter."""

    name: str
    contract: str
    setter: str
    getter: str
    unit: str
    description: str


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter(
            "reward-mint-cap",
            "ElectraToken",
            "setRewardMintCap",
            "rewardMintCap",
            "ELC base units",
            "cumulative cap on ELC minted as usage-mining rewards",
        ),
        Parameter(
            "protocol-fee-bps",
            "PaymentHub",
            "setProtocolFee",
            "protocolFeeBps",
            "basis points",
            "protocol fee on settled sessions, to the treasury (at most 1,000)",
        ),
    )
}


def parse_amount(text: str) -> int:
    """'2500000 ELC' or '2.5e6ELC' → base units; a bare integer is taken as base units."""
    t = text.strip().replace("_", "").replace(",", "")
    scale = 0
    if t.upper().endswith("ELC"):
        t, scale = t[:-3].strip(), ELC_DECIMALS
    try:
        value = Decimal(t) * (Decimal(10) ** scale)
    except InvalidOperation as exc:
        raise InvalidInput(
            f"invalid amount {text!r}", "give base units (e.g. 10**24) or ELC (e.g. '1000000 ELC')"
        ) from exc
    if value != value.to_integral_value() or value < 0:
        raise InvalidInput(f"invalid amount {text!r}: not a whole, non-negative number of base units")
    return int(value)


@dataclass(frozen=True)
class Proposal:
    proposal_id: int
    proposer: str
    targets: list[str]
    values: list[int]
    calldatas: list[bytes]
    description: str
    vote_start: int
    vote_end: int

    @property
    def description_hash(self) -> bytes:
        return keccak(text=self.description)


@dataclass(frozen=True)
class ProposalStatus:
    proposal_id: int
    state: str
    description: str
    votes_for: int
    votes_against: int
    votes_abstain: int
    quorum: int
    vote_start: int
    vote_end: int
    eta: int

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("proposal_id", "votes_for", "votes_against", "votes_abstain", "quorum"):
            d[k] = str(d[k])
        return d


class Dao:
    def __init__(self, electra: Electra) -> None:
        self.electra = electra
        self.client = electra.client
        self.governor = electra.governor()

    def propose_parameter(
        self, changes: list[tuple[str, int]], description: str, proposer: LocalAccount | None = None
    ) -> tuple[int, TxResult]:
        if not changes:
            raise InvalidInput("nothing to propose", "give at least one --set NAME=VALUE")
        if not description.strip():
            raise InvalidInput("empty proposal description", "say what the proposal changes and why")
        targets, calldatas = [], []
        for name, value in changes:
            param = PARAMETERS.get(name)
            if param is None:
                raise InvalidInput(f"unknown parameter {name!r}", f"governed parameters: {', '.join(PARAMETERS)}")
            contract = self.client.contract(param.contract, self.electra.deployment.address(param.contract))
            targets.append(contract.address)
            calldatas.append(contract.encode_abi(param.setter, args=[value]))
        fn = self.governor.functions.propose(targets, [0] * len(targets), calldatas, description)
        receipt = self.client.transact(fn, sender=proposer)
        args = self.governor.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)[0]["args"]
        return int(args["proposalId"]), TxResult.of(receipt)

    def vote(
        self,
        proposal_id: int,
        support: Support,
        reason: str = "",
        voter: LocalAccount | None = None,
    ) -> TxResult:
        if reason:
            fn = self.governor.functions.castVoteWithReason(proposal_id, int(support), reason)
        else:
            fn = self.governor.functions.castVote(proposal_id, int(support))
        return TxResult.of(self.client.transact(fn, sender=voter))

    def queue(self, proposal_id: int, sender: LocalAccount | None = None) -> TxResult:
        p = self.proposal(proposal_id)
        fn = self.governor.functions.queue(p.targets, p.values, p.calldatas, p.description_hash)
        return TxResult.of(self.client.transact(fn, sender=sender))

    def execute(self, proposal_id: int, sender: LocalAccount | None = None) -> TxResult:
        p = self.proposal(proposal_id)
        fn = self.governor.functions.execute(p.targets, p.values, p.calldatas, p.description_hash)
        return TxResult.of(self.client.transact(fn, sender=sender))

    def proposals(self) -> list[Proposal]:
        events = self.governor.events.ProposalCreated().get_logs(
            from_block=self.electra.deployment.block_number, to_block="latest"
        )
        return [
            Proposal(
                int(e["args"]["proposalId"]),
                str(e["args"]["proposer"]),
                [str(t) for t in e["args"]["targets"]],
                [int(v) for v in e["args"]["values"]],
                [bytes(c) for c in e["args"]["calldatas"]],
                str(e["args"]["description"]),
                int(e["args"]["voteStart"]),
                int(e["args"]["voteEnd"]),
            )
            for e in events
        ]

    def proposal(self, proposal_id: int) -> Proposal:
        for p in self.proposals():
            if p.proposal_id == proposal_id:
                return p
        raise InvalidInput(f"no proposal {proposal_id} on this deployment", "list them with `electra dao status`")

    def status(self, proposal_id: int) -> ProposalStatus:
        p = self.proposal(proposal_id)
        g = self.governor.functions
        state = ProposalState(self.client.call(g.state(proposal_id)))
        against, for_, abstain = self.client.call(g.proposalVotes(proposal_id))
        snapshot = int(self.client.call(g.proposalSnapshot(proposal_id)))
        now = int(self.client.call(self.electra.token.contract.functions.clock()))
        quorum = int(self.client.call(g.quorum(snapshot))) if snapshot < now else 0
        eta = int(self.client.call(g.proposalEta(proposal_id)))
        return ProposalStatus(
            proposal_id,
            state.name.lower(),
            p.description,
            int(for_),
            int(against),
            int(abstain),
            quorum,
            p.vote_start,
            p.vote_end,
            eta,
        )

    def parameter_value(self, name: str) -> int:
        param = PARAMETERS[name]
        contract = self.client.contract(param.contract, self.electra.deployment.address(param.contract))
        return int(self.client.call(getattr(contract.functions, param.getter)()))

    def chain_time(self) -> int:
        return int(self.client.w3.eth.get_block("latest")["timestamp"])
