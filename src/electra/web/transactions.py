"""Transactions the pages hand to the user's wallet (EIP-1193 ``eth_sendTransaction``): the server
encodes the calldata, the wallet signs and sends it from the user's own account, so the platform
never holds a host's or a voter's key.

Each one comes as ``{"from", "to", "data", "value", "function", "summary", "cli"}``: what a wallet
sends, what it calls in words, and the `electra` command that does the same.

Registering a charger is the one exception to "the user's key only": the charger's device key must
sign the onboarding (EIP-712 StationRegistration). A real charger signs with its own key; in the
dev flow the platform keeps the device key under ``<data_dir>/keys/stations/``, as
`electra station register` does, signs, and the host's wallet sends the registration.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from electra.chain import eip712
from electra.chain.bindings import Electra, station_input
from electra.chain.governance import PARAMETERS, Dao, Support
from electra.chain.keys import load_or_create_key
from electra.chain.payments import Erc20Binding
from electra.domain.geo import degrees_to_e6
from electra.domain.station import (
    StationSpec,
    check_charger_id,
    parse_connectors,
    parse_ocpp_versions,
    parse_operator_id,
)
from electra.errors import DeploymentMissing, InvalidInput
from electra.payments.amounts import parse_units
from electra.web.actions import checksum_account

ELC_DECIMALS = 18


def wallet_tx(sender: str, to: str, data: str, function: str, summary: str, cli: str) -> dict[str, Any]:
    return {
        "from": sender,
        "to": to,
        "data": data,
        "value": "0x0",
        "function": function,
        "summary": summary,
        "cli": cli,
    }


def power_w(text: str) -> int:
    try:
        watts = Decimal(str(text)) * 1000
    except InvalidOperation as exc:
        raise InvalidInput(f"invalid power {text!r}", "give kW, e.g. 22") from exc
    if watts <= 0 or watts != watts.to_integral_value() or watts >= 2**32:
        raise InvalidInput(f"invalid power {text!r} kW", "give a positive power with at most 3 decimals")
    return int(watts)


def registration(
    e: Electra,
    keys_dir: Path,
    owner: str,
    charger_id: str,
    latitude: str,
    longitude: str,
    power_kw: str,
    connectors: list[str],
    ocpp_versions: list[str],
    operator_id: str,
) -> dict[str, Any]:
    """StationRegistry.register for ``owner`` to send, signed by the charger's device key."""
    who = checksum_account(owner)
    check_charger_id(charger_id)
    if not connectors:
        raise InvalidInput("a charger with no connector", "pick at least one connector type")
    spec = StationSpec(
        charger_id=charger_id,
        latitude_e6=degrees_to_e6(latitude, "latitude"),
        longitude_e6=degrees_to_e6(longitude, "longitude"),
        max_power_w=power_w(power_kw),
        connector_types=parse_connectors(connectors),
        ocpp_versions=parse_ocpp_versions(ocpp_versions),
        operator_id=parse_operator_id(operator_id),
    )
    existing = e.stations.token_id_of(charger_id)
    if existing:
        raise InvalidInput(f"charger id {charger_id!r} is already registered as token {existing}", "pick another id")
    device, _ = load_or_create_key(keys_dir / "stations" / f"{charger_id}.key")
    typed = e.stations.registration_message(spec, who, device.address)
    signature = eip712.sign(device, typed)
    data = e.stations.contract.encode_abi(
        "register", args=[station_input(spec, device.address), typed["message"]["deadline"], signature]
    )
    tx = wallet_tx(
        who,
        e.stations.address,
        data,
        "StationRegistry.register(station, deadline, deviceSignature)",
        f"register charger {charger_id} as an NFT held by {who}",
        f"electra station register --charger-id {charger_id} --lat {latitude} --lon {longitude} "
        f"--power-kw {power_kw} --connectors {','.join(connectors)} --operator-id '{operator_id}'",
    )
    return {**tx, "device": device.address, "deadline": typed["message"]["deadline"]}


def _staking_address(e: Electra) -> str:
    address = e.deployment.addresses.get("StakingManager")
    if address is None:
        raise DeploymentMissing("this deployment has no StakingManager", "run `electra deploy` to add it")
    return address


def staking(e: Electra, account: str, charger_id: str, action: str, amount: str | None) -> list[dict[str, Any]]:
    """The transactions that stake ELC on a charger (an approval first if the allowance is short),
    start unbonding some, or withdraw what has unbonded."""
    who = checksum_account(account)
    token_id = e.stations.token_id_of(charger_id)
    if token_id == 0:
        raise InvalidInput(f"no charger {charger_id!r} is registered", "pick one of your chargers")
    manager = _staking_address(e)
    contract = e.staking.contract
    if action == "withdraw":
        return [
            wallet_tx(
                who,
                manager,
                contract.encode_abi("withdraw", args=[token_id]),
                "StakingManager.withdraw(chargerId)",
                f"withdraw the unbonded ELC staked on {charger_id}",
                f"electra stake withdraw {charger_id}",
            )
        ]
    units = parse_units(amount or "", ELC_DECIMALS, what="stake")
    if units == 0:
        raise InvalidInput("a stake of 0 ELC", "give a positive amount")
    if action == "unstake":
        return [
            wallet_tx(
                who,
                manager,
                contract.encode_abi("requestUnstake", args=[token_id, units]),
                "StakingManager.requestUnstake(chargerId, amount)",
                f"start unbonding {amount} ELC staked on {charger_id}",
                f"electra stake withdraw {charger_id} {amount}",
            )
        ]
    if action != "stake":
        raise InvalidInput(f"staking action {action!r}", "stake, unstake or withdraw")
    held = e.token.balance_of(who)
    if held < units:
        raise InvalidInput(f"{who} holds {held} ELC base units, less than {units}", "get ELC into that account first")
    txs = []
    elc = Erc20Binding(e.client, e.token.address)
    if elc.allowance(who, manager) < units:
        txs.append(
            wallet_tx(
                who,
                e.token.address,
                elc.contract.encode_abi("approve", args=[manager, units]),
                "ElectraToken.approve(spender, amount)",
                f"let StakingManager take {amount} ELC",
                "(electra stake add approves by itself)",
            )
        )
    txs.append(
        wallet_tx(
            who,
            manager,
            contract.encode_abi("stake", args=[token_id, units]),
            "StakingManager.stake(chargerId, amount)",
            f"stake {amount} ELC on {charger_id}",
            f"electra stake add {charger_id} {amount}",
        )
    )
    return txs


def proposal(e: Electra, proposer: str, changes: list[tuple[str, str]], description: str) -> dict[str, Any]:
    """Governor.propose of parameter changes (names from governance.PARAMETERS, values as the CLI
    reads them), for ``proposer`` to send."""
    who = checksum_account(proposer)
    if not changes:
        raise InvalidInput("nothing to propose", "give at least one parameter and its new value")
    if not description.strip():
        raise InvalidInput("empty proposal description", "say what the proposal changes and why")
    dao = Dao(e)
    targets, calldatas = [], []
    for name, text in changes:
        param = PARAMETERS.get(name)
        if param is None:
            raise InvalidInput(f"unknown parameter {name!r}", f"governed parameters: {', '.join(PARAMETERS)}")
        address = e.deployment.addresses.get(param.contract)
        if address is None:
            raise DeploymentMissing(f"this deployment has no {param.contract}", "run `electra deploy` to add it")
        contract = e.client.contract(param.contract, address)
        targets.append(contract.address)
        calldatas.append(contract.encode_abi(param.setter, args=param.args(param.parse(text))))
    data = dao.governor.encode_abi("propose", args=[targets, [0] * len(targets), calldatas, description])
    sets = " ".join(f"--set '{n}={v}'" for n, v in changes)
    tx = wallet_tx(
        who,
        dao.governor.address,
        data,
        "ElectraGovernor.propose(targets, values, calldatas, description)",
        "propose " + ", ".join(f"{n} = {v}" for n, v in changes),
        f"electra dao propose {sets} -d {_quote(description)}",
    )
    return {**tx, "targets": targets, "calldatas": calldatas}


def vote(e: Electra, voter: str, proposal_id: int, support: str, reason: str = "") -> dict[str, Any]:
    who = checksum_account(voter)
    try:
        choice = Support[support.upper()]
    except KeyError as exc:
        raise InvalidInput(f"vote {support!r}", "for, against or abstain") from exc
    dao = Dao(e)
    dao.proposal(proposal_id)  # InvalidInput if there is none
    if reason:
        data = dao.governor.encode_abi("castVoteWithReason", args=[proposal_id, int(choice), reason])
        fn = "ElectraGovernor.castVoteWithReason(proposalId, support, reason)"
    else:
        data = dao.governor.encode_abi("castVote", args=[proposal_id, int(choice)])
        fn = "ElectraGovernor.castVote(proposalId, support)"
    return wallet_tx(
        who,
        dao.governor.address,
        data,
        fn,
        f"vote {choice.name.lower()} on proposal {proposal_id}",
        f"electra dao vote {proposal_id} --support {choice.name.lower()}",
    )


def proposal_step(e: Electra, sender: str, proposal_id: int, step: str) -> dict[str, Any]:
    """Governor.queue or Governor.execute of a proposal, rebuilt from its ProposalCreated event."""
    who = checksum_account(sender)
    if step not in ("queue", "execute"):
        raise InvalidInput(f"proposal step {step!r}", "queue or execute")
    dao = Dao(e)
    p = dao.proposal(proposal_id)
    data = dao.governor.encode_abi(step, args=[p.targets, p.values, p.calldatas, p.description_hash])
    return wallet_tx(
        who,
        dao.governor.address,
        data,
        f"ElectraGovernor.{step}(targets, values, calldatas, descriptionHash)",
        f"{step} proposal {proposal_id}",
        f"electra dao {step} {proposal_id}",
    )


def delegation(e: Electra, account: str, delegatee: str | None = None) -> dict[str, Any]:
    who = checksum_account(account)
    to = checksum_account(delegatee) if delegatee else who
    return wallet_tx(
        who,
        e.token.address,
        e.token.contract.encode_abi("delegate", args=[to]),
        "ElectraToken.delegate(delegatee)",
        "vote with your own ELC" if to == who else f"let {to} vote with your ELC",
        "(ERC20Votes counts delegated ELC only)",
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
