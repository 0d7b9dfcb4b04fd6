"""The DAO: proposals, their state, governed parameters, and vote instructions: the call a wallet
sends, or the EIP-712 ballot it signs for anyone to relay."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from electra.api.context import ApiProblem
from electra.api.deps import Caller, Chain, Page
from electra.api.routes import COMMON
from electra.api.schemas import Page as PageOf
from electra.api.schemas import ParameterPublic, ProposalPublic, TxCallPublic, VoteInstructionsPublic
from electra.chain.governance import PARAMETERS, Dao, Proposal, Support
from electra.errors import DeploymentMissing, InvalidInput

router = APIRouter(prefix="/api/v1/dao", tags=["dao"], responses=COMMON)
ProposalIdPath = Annotated[str, Path(pattern=r"^[0-9]{1,78}$", description="The governor's proposal id (uint256)")]
BALLOT = [
    {"name": "proposalId", "type": "uint256"},
    {"name": "support", "type": "uint8"},
    {"name": "voter", "type": "address"},
    {"name": "nonce", "type": "uint256"},
]
EXTENDED_BALLOT = [*BALLOT, {"name": "reason", "type": "string"}, {"name": "params", "type": "bytes"}]


def _proposal_public(dao: Dao, p: Proposal) -> ProposalPublic:
    st = dao.status(p.proposal_id)
    return ProposalPublic(
        proposal_id=str(p.proposal_id),
        proposer=p.proposer,
        description=p.description,
        state=st.state,
        votes_for=str(st.votes_for),
        votes_against=str(st.votes_against),
        votes_abstain=str(st.votes_abstain),
        quorum=str(st.quorum),
        vote_start=p.vote_start,
        vote_end=p.vote_end,
        eta=st.eta,
        calls=[
            TxCallPublic(to=t, data="0x" + c.hex(), value=str(v), description=f"call {i + 1} of the proposal")
            for i, (t, c, v) in enumerate(zip(p.targets, p.calldatas, p.values, strict=True))
        ],
    )


def _find(dao: Dao, proposal_id: str) -> Proposal:
    try:
        return dao.proposal(int(proposal_id))
    except InvalidInput as exc:
        raise ApiProblem(404, "proposal-unknown", exc.cause, exc.fix) from exc


@router.get("/proposals", summary="Proposals, newest first, with their state and votes")
def proposals(e: Chain, page: Page) -> PageOf[ProposalPublic]:
    dao = Dao(e)
    everything = list(reversed(dao.proposals()))
    first = page.cursor or 0
    shown = everything[first : first + page.limit]
    more = first + page.limit < len(everything)
    return PageOf[ProposalPublic](
        items=[_proposal_public(dao, p) for p in shown], next=str(first + page.limit) if more else None
    )


@router.get("/proposals/{proposal_id}", summary="A proposal: state, votes, quorum, timelock eta, its calls")
def proposal(proposal_id: ProposalIdPath, e: Chain) -> ProposalPublic:
    dao = Dao(e)
    return _proposal_public(dao, _find(dao, proposal_id))


@router.get(
    "/proposals/{proposal_id}/vote",
    summary="How to vote: the castVote call to send, or the EIP-712 ballot to sign for castVoteBySig",
)
def vote_instructions(
    proposal_id: ProposalIdPath,
    e: Chain,
    caller: Caller,
    support: Annotated[str, Query(pattern="^(for|against|abstain)$")],
    reason: Annotated[str, Query(max_length=1000)] = "",
    voter: Annotated[
        str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="Default: the signed-in wallet")
    ] = None,
) -> VoteInstructionsPublic:
    from eth_utils.address import to_checksum_address

    dao = Dao(e)
    p = _find(dao, proposal_id)
    pid = p.proposal_id
    choice = Support[support.upper()]
    g = dao.governor
    fn = "castVoteWithReason" if reason else "castVote"
    args: list[Any] = [pid, int(choice), reason] if reason else [pid, int(choice)]
    call = TxCallPublic(to=g.address, data=g.encode_abi(fn, args=args), description=f"{fn} {support} on proposal {pid}")
    who = voter or caller.address
    typed = power = has_voted = None
    if who is not None:
        who = to_checksum_address(who)
        nonce = int(e.client.call(g.functions.nonces(who)))
        name = str(e.client.call(g.functions.name()))
        version = str(e.client.call(g.functions.version()))
        message: dict[str, Any] = {"proposalId": pid, "support": int(choice), "voter": who, "nonce": nonce}
        types: dict[str, Any] = {"Ballot": BALLOT}
        primary = "Ballot"
        if reason:
            message |= {"reason": reason, "params": "0x"}
            types, primary = {"ExtendedBallot": EXTENDED_BALLOT}, "ExtendedBallot"
        typed = {
            "types": {"EIP712Domain": _domain_type(), **types},
            "primaryType": primary,
            "domain": {"name": name, "version": version, "chainId": e.client.chain_id, "verifyingContract": g.address},
            "message": {k: str(v) if isinstance(v, int) and k != "support" else v for k, v in message.items()},
        }
        snapshot = int(e.client.call(g.functions.proposalSnapshot(pid)))
        now = int(e.client.call(e.token.contract.functions.clock()))
        votes = int(e.client.call(g.functions.getVotes(who, snapshot))) if snapshot < now else e.token.votes(who)
        power = str(votes)
        has_voted = bool(e.client.call(g.functions.hasVoted(pid, who)))
    return VoteInstructionsPublic(
        proposal_id=str(pid),
        support=support,  # type: ignore[arg-type]
        state=dao.status(pid).state,
        governor=g.address,
        chain_id=e.client.chain_id,
        call=call,
        typed_data=typed,
        voter=who,
        voting_power=power,
        has_voted=has_voted,
    )


def _domain_type() -> list[dict[str, str]]:
    return [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ]


def _value(v: Any) -> Any:
    if isinstance(v, list):
        return [t.to_json() if hasattr(t, "to_json") else t for t in v]
    return str(v) if isinstance(v, int) else v


@router.get("/parameters", summary="The governed parameters and their values on-chain now")
def parameters(e: Chain) -> list[ParameterPublic]:
    dao = Dao(e)
    out = []
    for p in PARAMETERS.values():
        try:
            value = _value(dao.parameter_value(p.name))
        except DeploymentMissing:
            value = None  # the deployment predates the contract that holds it
        out.append(
            ParameterPublic(name=p.name, contract=p.contract, unit=p.unit, description=p.description, value=value)
        )
    return out
