"""`electra dao`: propose, vote, queue, execute and inspect governance proposals."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from electra.chain.bindings import TxResult
from electra.chain.governance import PARAMETERS, Dao, ProposalState, ProposalStatus, Support, parse_amount
from electra.cli import common
from electra.cli.common import AccountOpt, JsonOpt, KeyOpt, console, emit, handles_errors, kv_table
from electra.domain.rewards import checksum
from electra.errors import InvalidInput

dao_app = typer.Typer(
    help="The DAO: ELC holders govern fees, rewards and bounds through the timelock.",
    no_args_is_help=True,
)


def _dao() -> Dao:
    return Dao(common.electra())


def _proposal_id(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise InvalidInput(f"invalid proposal id {text!r}", "give the decimal id `electra dao status` shows") from None


@dao_app.command("params")
@handles_errors
def params(as_json: JsonOpt = False) -> None:
    """List governed parameters and their current values."""
    dao = _dao()
    deployed = dao.electra.deployment.addresses
    rows = [
        {
            "name": p.name,
            # A contract added after this deployment was made has no value until `electra deploy`.
            "value": p.show(dao.parameter_value(p.name)) if p.contract in deployed else None,
            "unit": p.unit,
            "contract": p.contract,
            "description": p.description,
        }
        for p in PARAMETERS.values()
    ]

    def human() -> None:
        t = Table("parameter", "value", "unit", "what")
        for r in rows:
            t.add_row(r["name"], r["value"] or "(not deployed)", r["unit"], r["description"])
        console.print(t)

    emit({"parameters": rows}, as_json, human)


@dao_app.command("propose")
@handles_errors
def propose(
    set_: Annotated[
        list[str],
        typer.Option(
            "--set",
            help=(
                "NAME=VALUE, e.g. reward-mint-cap='20000000 ELC' or "
                "staking-tiers='1000 ELC:1000:500,10000 ELC:2500:1500' (see `electra dao params`)."
            ),
        ),
    ],
    description: Annotated[str, typer.Option("--description", "-d", help="What changes and why.")],
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Propose parameter changes; they take effect through the timelock if the vote passes."""
    changes = []
    for item in set_:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"invalid --set {item!r}", "use NAME=VALUE")
        param = PARAMETERS.get(name.strip())
        if param is None:
            raise InvalidInput(f"unknown parameter {name.strip()!r}", f"governed parameters: {', '.join(PARAMETERS)}")
        changes.append((param.name, param.parse(value)))
    dao = _dao()
    pid, tx = dao.propose_parameter(changes, description, proposer=common.sender(dao.client, key, account))
    _proposed(dao, pid, tx, as_json)


@dao_app.command("slash")
@handles_errors
def slash(
    charger: Annotated[int, typer.Argument(help="The charger's token id.", min=1)],
    staker: Annotated[str, typer.Argument(help="Whose stake on it.")],
    amount: Annotated[str, typer.Argument(help="At most this much: base units or e.g. '5000 ELC'.")],
    evidence: Annotated[str, typer.Option("--evidence", help="32-byte hex reference to the proof of fraud.")],
    description: Annotated[str, typer.Option("--description", "-d", help="The fraud and its proof.")],
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Propose slashing a host's stake on a charger for proven fraud; the stake goes to the treasury."""
    try:
        evidence_bytes = bytes.fromhex(evidence.removeprefix("0x"))
    except ValueError:
        evidence_bytes = b""
    if len(evidence_bytes) != 32:
        raise InvalidInput(f"invalid evidence {evidence!r}", "give 32 bytes of hex, e.g. a session record's leaf")
    dao = _dao()
    args = [charger, checksum(staker), parse_amount(amount), evidence_bytes]
    pid, tx = dao.propose_action("slash", args, description, proposer=common.sender(dao.client, key, account))
    _proposed(dao, pid, tx, as_json)


@dao_app.command("wire")
@handles_errors
def wire(
    description: Annotated[
        str, typer.Option("--description", "-d", help="Why.")
    ] = "Wire staking and rewards: RewardsDistributor mints ELC rewards, StakingManager sets the commission",
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Propose what a deployment that got staking and rewards added later still needs from the
    timelock (a fresh deployment has it from genesis)."""
    dao = _dao()
    pid, tx = dao.propose_wiring(description, proposer=common.sender(dao.client, key, account))
    _proposed(dao, pid, tx, as_json)


def _proposed(dao: Dao, pid: int, tx: TxResult, as_json: bool) -> None:
    st = dao.status(pid)
    data = {
        "proposal_id": str(pid),
        "tx_hash": tx.tx_hash,
        "gas_used": tx.gas_used,
        "vote_start": st.vote_start,
        "vote_end": st.vote_end,
        "state": st.state,
    }
    emit(data, as_json, lambda: kv_table("proposal created", list(data.items())))


@dao_app.command("vote")
@handles_errors
def vote(
    proposal_id: Annotated[str, typer.Argument()],
    support: Annotated[str, typer.Option("--support", help="for, against or abstain.")] = "for",
    reason: Annotated[str, typer.Option("--reason")] = "",
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cast a vote with the sender's delegated ELC."""
    try:
        choice = Support[support.upper()]
    except KeyError:
        raise InvalidInput(f"invalid support {support!r}", "use for, against or abstain") from None
    dao = _dao()
    pid = _proposal_id(proposal_id)
    st = dao.status(pid)
    if st.state == ProposalState.PENDING.name.lower():
        wait = st.vote_start - dao.chain_time() + 1
        fix = f"wait {wait} s" + (f" (dev chain: `electra chain advance {wait}`)" if dao.client.is_anvil else "")
        raise InvalidInput(f"voting on proposal {pid} has not opened yet", fix)
    tx = dao.vote(pid, choice, reason, voter=common.sender(dao.client, key, account))
    data = {
        "proposal_id": str(pid),
        "support": choice.name.lower(),
        "tx_hash": tx.tx_hash,
        "gas_used": tx.gas_used,
    }
    emit(data, as_json, lambda: kv_table("vote cast", list(data.items())))


@dao_app.command("queue")
@handles_errors
def queue(
    proposal_id: Annotated[str, typer.Argument()],
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a succeeded proposal in the timelock."""
    dao = _dao()
    pid = _proposal_id(proposal_id)
    _require_state(dao, pid, ProposalState.SUCCEEDED, "queue")
    tx = dao.queue(pid, sender=common.sender(dao.client, key, account))
    st = dao.status(pid)
    data = {"proposal_id": str(pid), "eta": st.eta, "tx_hash": tx.tx_hash, "gas_used": tx.gas_used}
    emit(data, as_json, lambda: kv_table("queued", list(data.items())))


@dao_app.command("execute")
@handles_errors
def execute(
    proposal_id: Annotated[str, typer.Argument()],
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Execute a queued proposal once its timelock delay has passed."""
    dao = _dao()
    pid = _proposal_id(proposal_id)
    st = _require_state(dao, pid, ProposalState.QUEUED, "execute")
    wait = st.eta - dao.chain_time()
    if wait > 0:
        fix = f"wait {wait} s" + (f" (dev chain: `electra chain advance {wait}`)" if dao.client.is_anvil else "")
        raise InvalidInput(f"proposal {pid} is in the timelock until {st.eta}", fix)
    tx = dao.execute(pid, sender=common.sender(dao.client, key, account))
    data = {
        "proposal_id": str(pid),
        "state": dao.status(pid).state,
        "tx_hash": tx.tx_hash,
        "gas_used": tx.gas_used,
    }
    emit(data, as_json, lambda: kv_table("executed", list(data.items())))


@dao_app.command("status")
@handles_errors
def status(proposal_id: Annotated[str | None, typer.Argument()] = None, as_json: JsonOpt = False) -> None:
    """Show one proposal, or all of them."""
    dao = _dao()
    ids = [_proposal_id(proposal_id)] if proposal_id else [p.proposal_id for p in dao.proposals()]
    rows = [dao.status(i).to_json() for i in ids]

    def human() -> None:
        if proposal_id:
            kv_table(f"proposal {proposal_id}", list(rows[0].items()))
            return
        t = Table("id", "state", "for", "against", "abstain", "description")
        for r in rows:
            t.add_row(
                r["proposal_id"],
                r["state"],
                r["votes_for"],
                r["votes_against"],
                r["votes_abstain"],
                r["description"][:60],
            )
        console.print(t)

    emit(rows[0] if proposal_id else {"proposals": rows}, as_json, human)


@dao_app.command("delegate")
@handles_errors
def delegate(
    to: Annotated[str | None, typer.Argument(help="Delegatee; default: yourself.")] = None,
    key: KeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delegate your ELC votes (to yourself to vote directly)."""
    dao = _dao()
    sender = common.sender(dao.client, key, account)
    tx = dao.electra.token.delegate(to or sender.address, sender=sender)
    data = {
        "delegatee": to or sender.address,
        "votes": str(dao.electra.token.votes(to or sender.address)),
        "tx_hash": tx.tx_hash,
    }
    emit(data, as_json, lambda: kv_table("delegated", list(data.items())))


def _require_state(dao: Dao, pid: int, wanted: ProposalState, action: str) -> ProposalStatus:
    st = dao.status(pid)
    if st.state != wanted.name.lower():
        raise InvalidInput(f"cannot {action} proposal {pid}: it is {st.state}", f"it must be {wanted.name.lower()}")
    return st
