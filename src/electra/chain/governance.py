"""DAO flows: propose a parameter change or a governed action, vote, queue it in the timelock,
execute it.

Governed parameters have names (:data:`PARAMETERS`: a setter and a getter on one contract, and a
value kind that says how the CLI parses and shows it); governed actions that are not parameters,
such as slashing a host's stake, are :data:`ACTIONS`. Proposals are rebuilt from the governor's own
`ProposalCreated` events, so queue and execute need nothing but the proposal id: the chain is the
record, not a local file.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.contract import Contract
from web3.logs import DISCARD

from electra.chain.bindings import Electra, TxResult
from electra.chain.deploy import genesis_calls
from electra.chain.staking import Tier, check_tiers
from electra.domain.rewards import checksum
from electra.errors import DeploymentMissing, InvalidInput

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
    """A governed parameter: where it lives, its setter and its getter, and its kind of value:
    ``amount`` (ELC base units, or '1000 ELC'), ``integer`` (seconds, basis points), ``address``, or
    ``tiers`` (StakingManager's tier table, :func:`parse_tiers`)."""

    name: str
    contract: str
    setter: str
    getter: str
    unit: str
    description: str
    kind: str = "amount"

    def parse(self, text: str) -> Any:
        """The value of ``--set NAME=TEXT``."""
        if self.kind == "amount":
            return parse_amount(text)
        if self.kind == "integer":
            return parse_integer(text, self.name)
        if self.kind == "address":
            return checksum(text.strip())
        return parse_tiers(text)

    def args(self, value: Any) -> list[Any]:
        """The setter's arguments for ``value``, checked as the contract would."""
        if self.kind == "tiers":
            tiers = check_tiers([t if isinstance(t, Tier) else Tier(*t) for t in value])
            return [[(t.min_stake, t.discount_bps, t.boost_bps) for t in tiers]]
        if self.kind == "address":
            return [checksum(value)]
        if not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{self.name} must be a whole, non-negative number, not {value!r}")
        return [value]

    def value_of(self, raw: Any) -> Any:
        """The getter's answer as this parameter's value (tiers as :class:`Tier`)."""
        if self.kind == "tiers":
            return [Tier(int(m), int(d), int(b)) for m, d, b in raw]
        if self.kind == "address":
            return str(raw)
        return int(raw)

    def show(self, value: Any) -> str:
        if self.kind == "tiers":
            return format_tiers(value)
        return str(value)


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
            "integer",
        ),
        Parameter(
            "staking-tiers",
            "StakingManager",
            "setTiers",
            "tiers",
            "MIN_STAKE:DISCOUNT_BPS:BOOST_BPS,...",
            "staking tiers: minimum stake, share of the protocol fee waived, discovery boost (at most 8)",
            "tiers",
        ),
        Parameter(
            "unbonding-delay-s",
            "StakingManager",
            "setUnbondingDelay",
            "unbondingDelay",
            "seconds",
            "wait between requesting to unstake and withdrawing; keep it above the governance cycle",
            "integer",
        ),
        Parameter(
            "reward-epoch-cap",
            "RewardsDistributor",
            "setEpochCap",
            "epochCap",
            "ELC base units",
            "most one usage-mining epoch may pay out",
        ),
        Parameter(
            "rewards-publisher",
            "RewardsDistributor",
            "setPublisher",
            "publisher",
            "address",
            "the account that publishes usage-mining epochs (zero address: nobody)",
            "address",
        ),
    )
}


@dataclass(frozen=True)
class Action:
    """A governed action that is not a parameter: a function of one contract with named arguments."""

    name: str
    contract: str
    function: str
    arguments: tuple[str, ...]
    description: str


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            "slash",
            "StakingManager",
            "slash",
            ("charger_id", "staker", "amount", "evidence"),
            "take up to AMOUNT of STAKER's stake on a charger for proven fraud, to the treasury",
        ),
    )
}


def parse_integer(text: str, what: str) -> int:
    t = text.strip().replace("_", "").replace(",", "")
    if not t.isdigit():
        raise InvalidInput(f"invalid {what} {text!r}", "give a whole, non-negative number")
    return int(t)


def parse_tiers(text: str) -> list[Tier]:
    """'1000 ELC:1000:500,10000 ELC:2500:1500' → tiers; each is MIN_STAKE:DISCOUNT_BPS:BOOST_BPS,
    the minimum stake in base units or ELC; an empty text is an empty table."""
    tiers = []
    for item in (i for i in text.split(",") if i.strip()):
        parts = item.split(":")
        if len(parts) != 3:
            raise InvalidInput(f"invalid tier {item!r}", "write each tier as MIN_STAKE:DISCOUNT_BPS:BOOST_BPS")
        tiers.append(
            Tier(parse_amount(parts[0]), parse_integer(parts[1], "discount"), parse_integer(parts[2], "boost"))
        )
    return check_tiers(tiers)


def format_tiers(tiers: list[Tier]) -> str:
    """The inverse of :func:`parse_tiers`, minimum stakes in base units."""
    return ",".join(f"{t.min_stake}:{t.discount_bps}:{t.boost_bps}" for t in tiers)


def wiring_calls(electra: Electra) -> list[tuple[str, bytes]]:
    """The timelock settings staking and rewards need that the deployment still lacks: governance
    makes RewardsDistributor an ELC minter and StakingManager PaymentHub's commission hook. A fresh
    deployment has both (genesis wiring, electra.chain.deploy); a deployment that got the staking
    contracts added later needs one proposal of these calls."""
    addresses = electra.deployment.addresses
    if "StakingManager" not in addresses or "RewardsDistributor" not in addresses:
        raise DeploymentMissing(
            f"the deployment on chain id {electra.deployment.chain_id} predates StakingManager",
            "run `electra deploy` to add staking and rewards",
        )
    minter_set = electra.client.call(electra.token.contract.functions.isMinter(addresses["RewardsDistributor"]))
    hook_set = electra.payments.commission_hook() == addresses["StakingManager"]
    minter_call, hook_call = genesis_calls(addresses, electra.client)
    return [call for call, done in ((minter_call, minter_set), (hook_call, hook_set)) if not done]


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
        self, changes: list[tuple[str, Any]], description: str, proposer: LocalAccount | None = None
    ) -> tuple[int, TxResult]:
        """Proposes parameter changes; a value is what :meth:`Parameter.parse` gives (an int for
        amounts and integers, an address, a list of :class:`Tier`)."""
        if not changes:
            raise InvalidInput("nothing to propose", "give at least one --set NAME=VALUE")
        calls = []
        for name, value in changes:
            param = PARAMETERS.get(name)
            if param is None:
                raise InvalidInput(f"unknown parameter {name!r}", f"governed parameters: {', '.join(PARAMETERS)}")
            contract = self._contract(param.contract)
            calls.append((contract.address, _calldata(contract.encode_abi(param.setter, args=param.args(value)))))
        return self.propose_calls(calls, description, proposer)

    def propose_action(
        self, name: str, args: list[Any], description: str, proposer: LocalAccount | None = None
    ) -> tuple[int, TxResult]:
        """Proposes a governed action (:data:`ACTIONS`), e.g. ``slash`` with
        ``[charger_id, staker, amount, evidence]``."""
        action = ACTIONS.get(name)
        if action is None:
            raise InvalidInput(f"unknown action {name!r}", f"governed actions: {', '.join(ACTIONS)}")
        if len(args) != len(action.arguments):
            raise InvalidInput(f"{name} takes {', '.join(action.arguments)}")
        contract = self._contract(action.contract)
        calldata = _calldata(contract.encode_abi(action.function, args=list(args)))
        return self.propose_calls([(contract.address, calldata)], description, proposer)

    def propose_wiring(self, description: str, proposer: LocalAccount | None = None) -> tuple[int, TxResult]:
        """Proposes :func:`wiring_calls`; InvalidInput if nothing is missing."""
        calls = wiring_calls(self.electra)
        if not calls:
            raise InvalidInput("staking and rewards are wired already", "nothing to propose")
        return self.propose_calls(calls, description, proposer)

    def propose_calls(
        self, calls: list[tuple[str, bytes]], description: str, proposer: LocalAccount | None = None
    ) -> tuple[int, TxResult]:
        """Proposes any calls the timelock should make, as (target, calldata) pairs."""
        if not calls:
            raise InvalidInput("nothing to propose", "give at least one call")
        if not description.strip():
            raise InvalidInput("empty proposal description", "say what the proposal changes and why")
        targets = [t for t, _ in calls]
        fn = self.governor.functions.propose(targets, [0] * len(calls), [c for _, c in calls], description)
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

    def parameter_value(self, name: str) -> Any:
        """The parameter's current value on-chain (an int, an address, or a list of Tier)."""
        param = PARAMETERS[name]
        contract = self._contract(param.contract)
        return param.value_of(self.client.call(getattr(contract.functions, param.getter)()))

    def _contract(self, name: str) -> Contract:
        address = self.electra.deployment.addresses.get(name)
        if address is None:
            raise DeploymentMissing(
                f"the deployment on chain id {self.electra.deployment.chain_id} predates {name}",
                "run `electra deploy` to add it",
            )
        return self.client.contract(name, address)

    def chain_time(self) -> int:
        return int(self.client.w3.eth.get_block("latest")["timestamp"])


def _calldata(encoded: str) -> bytes:
    return bytes.fromhex(encoded.removeprefix("0x"))
