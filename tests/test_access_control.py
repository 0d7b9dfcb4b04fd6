"""Access control on every state-changing function of every deployed contract, enumerated from the
ABIs in src/electra/chain/artifacts: called by a random account, each one reverts with an
access-control error, unless it is listed below as public by design, with the reason. A function
added later is in neither list until someone decides which it is: the test fails until then."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from web3.exceptions import ContractLogicError

from electra.chain import artifacts
from electra.chain.bindings import Electra
from electra.chain.client import decode_revert
from electra.chain.keys import dev_account
from electra.domain.station import StationSpec
from electra.domain.vehicle import vin_hash

pytestmark = pytest.mark.security

HOST, OWNER = dev_account(1), dev_account(4)

# Errors that say "not you": OpenZeppelin's and Electra's own.
ACCESS_ERRORS = {
    "OwnableUnauthorizedAccount",
    "AccessControlUnauthorizedAccount",
    "AccessControlBadConfirmation",
    "TimelockUnauthorizedCaller",
    "GovernorOnlyExecutor",
    "GovernorOnlyProposer",
    "GovernorUnableToCancel",  # (proposalId, account): only the proposer cancels, while pending
    "ERC721InsufficientApproval",
    "ERC721InvalidApprover",
    "ElectraTokenUnauthorizedMinter",
    "ElectraUSDUnauthorizedMinter",
    "StationRegistryNotStationOwner",
    "VehicleLedgerNotVehicleOwner",
    "VehicleLedgerUnauthorizedAccount",
    "PaymentHubNotVehicleOwner",
    "PaymentHubUnauthorizedSettler",
    "PaymentHubUnauthorizedGuardian",
    "PaymentHubUnauthorizedLedger",
    "SessionAnchorUnauthorizedAnchorer",
    "SessionAnchorUnauthorizedGuardian",
    "StakingManagerNotChargerHolder",
    "RewardsDistributorUnauthorizedPublisher",
}

ERC20_OWN = "ERC-20: moves or approves the caller's own tokens, or spends an allowance given to it"
OPEN_EXECUTION = "open execution (executor role of address 0): only what the governor scheduled, after the delay"
SIGNED = "authorized by the holder's signature in the arguments (EIP-712), not by the sender"
PUBLIC: dict[str, dict[str, str]] = {
    "ElectraToken": {
        "approve": ERC20_OWN,
        "transfer": ERC20_OWN,
        "transferFrom": ERC20_OWN,
        "delegate": "delegates the caller's own votes",
        "delegateBySig": SIGNED,
        "permit": SIGNED,
    },
    "ElectraUSD": {
        "approve": ERC20_OWN,
        "transfer": ERC20_OWN,
        "transferFrom": ERC20_OWN,
        "burn": "burns the caller's own tokens",
        "burnFrom": "burns within an allowance given to the caller",
        "permit": SIGNED,
    },
    "StationRegistry": {
        "register": "self-service: anyone mints a charger NFT to itself, proven by the device's signature",
        "setApprovalForAll": "ERC-721: the caller's own operator approvals",
    },
    "VehicleLedger": {
        "register": "self-service: anyone registers a vehicle it owns (the VIN and device must be free)",
        "onboard": "a vehicle onboards itself: its device's signature, relayed by anyone",
    },
    "PaymentHub": {
        "deposit": "anyone may fund a vehicle's account (only its owner can withdraw)",
        "depositWithPermit": "anyone may fund a vehicle's account, with the payer's permit",
        "withdrawEarnings": "pays out the caller's own earnings",
        "sweepFees": "always pays the governed treasury, whoever calls",
    },
    "StakingManager": {
        "requestUnstake": "acts on the caller's own stake position",
        "withdraw": "pays the caller's own unbonded stake",
    },
    "RewardsDistributor": {
        "claim": "pays the account in a published Merkle leaf (proof required), whoever relays it",
        "claimEpochs": "pays the account in published Merkle leaves (proofs required), whoever relays them",
    },
    "ElectraGovernor": {
        "propose": "open to holders above the governed proposal threshold",
        "castVote": "weighted by the caller's own votes",
        "castVoteWithReason": "weighted by the caller's own votes",
        "castVoteWithReasonAndParams": "weighted by the caller's own votes",
        "castVoteBySig": SIGNED,
        "castVoteWithReasonAndParamsBySig": SIGNED,
        "queue": "anyone may queue a proposal that succeeded (OpenZeppelin Governor)",
        "execute": "anyone may execute a queued proposal after the timelock delay",
        "onERC721Received": "a receiver hook: only says the governor accepts tokens",
        "onERC1155Received": "a receiver hook: only says the governor accepts tokens",
        "onERC1155BatchReceived": "a receiver hook: only says the governor accepts tokens",
    },
    "ElectraTimelock": {
        "execute": OPEN_EXECUTION,
        "executeBatch": OPEN_EXECUTION,
        "onERC721Received": "a receiver hook: only says the timelock accepts tokens",
        "onERC1155Received": "a receiver hook: only says the timelock accepts tokens",
        "onERC1155BatchReceived": "a receiver hook: only says the timelock accepts tokens",
    },
}
# Deployed only for tests and benchmarks, never in a deployment's manifest.
NOT_DEPLOYED = {"TestSmartWallet", "TestCommissionHook", "DirectChargeBaseline", "FlatChargeBaseline"}
NOT_DEPLOYED |= {"PerSessionHashBaseline", "ReentrantToken", "ReentrantWallet"}


def state_changing(name: str) -> list[dict[str, Any]]:
    return [
        item
        for item in artifacts.load(name).abi
        if item["type"] == "function" and item.get("stateMutability") in ("nonpayable", "payable")
    ]


def signature(item: dict[str, Any]) -> str:
    from electra.chain.client import _abi_type

    return f"{item['name']}({','.join(_abi_type(i) for i in item['inputs'])})"


class Args:
    """Arguments that pass every check before the access check: real ids, non-zero amounts."""

    def __init__(self, station: int, vehicle: int, known: str) -> None:
        self.station, self.vehicle, self.known = station, vehicle, known

    def value(self, param: dict[str, Any]) -> Any:
        t, name = param["type"], param.get("name", "").lower()
        if t.endswith("]"):
            return []
        if t.startswith("tuple"):
            return tuple(self.value(c) for c in param["components"])
        if t == "address":
            return self.known
        if t.startswith("uint") or t.startswith("int"):
            if "vehicle" in name:
                return self.vehicle
            if "tokenid" in name or "charger" in name:
                return self.station
            return 1
        if t == "bool":
            return True
        if t == "string":
            return "x"
        if t == "bytes":
            return b""
        if t.startswith("bytes"):
            return b"\x01" * int(t[5:])
        raise AssertionError(f"no default for {t}")


def revert_of(
    electra: Electra, address: str, item: dict[str, Any], args: Args, caller: str, values: list[Any] | None = None
) -> str | None:
    contract = electra.client.w3.eth.contract(address=address, abi=[item])
    values = values if values is not None else [args.value(p) for p in item["inputs"]]
    fn = contract.get_function_by_signature(signature(item))(*values)
    data = fn._encode_transaction_data()
    try:
        electra.client.w3.eth.call({"from": caller, "to": address, "data": data, "gas": 5_000_000})
    except ContractLogicError as exc:
        return decode_revert(exc.data if isinstance(exc.data, str) else None).error
    return None


def pending_proposal(electra: Electra) -> list[Any]:
    """A pending proposal of the operator (who holds the genesis votes): cancel's arguments."""
    from eth_utils import keccak

    governor = electra.client.contract("ElectraGovernor", electra.deployment.addresses["ElectraGovernor"])
    targets, values, calldatas, description = [electra.token.address], [0], [b""], "access-control probe"
    electra.client.transact(governor.functions.propose(targets, values, calldatas, description))
    return [targets, values, calldatas, keccak(text=description)]


@pytest.fixture
def ids(electra: Electra) -> tuple[int, int]:
    spec = StationSpec("CP-ACL-0001", 52_520_008, 13_404_954, 22_000, 2, 1, b"DEELC")
    station, _ = electra.stations.register(spec, Account.create(), owner=HOST)
    vehicle, _ = electra.vehicles.register(vin_hash("WVWZZZE1ZPP0ACL01"), Account.create().address, owner=OWNER)
    return station, vehicle


def test_every_state_changing_function_is_restricted_or_public_by_design(
    electra: Electra, ids: tuple[int, int]
) -> None:
    deployed = electra.deployment.addresses
    names = [n for n in artifacts.names() if n not in NOT_DEPLOYED]
    assert set(names) <= set(deployed), f"not in the deployment: {set(names) - set(deployed)}"
    stranger = Account.create().address
    args = Args(*ids, known=HOST.address)
    checked, public, problems = 0, 0, []
    for name in names:
        for item in state_changing(name):
            fn = item["name"]
            if fn in PUBLIC.get(name, {}):
                assert PUBLIC[name][fn], f"{name}.{fn} needs a reason"
                public += 1
                continue
            values = pending_proposal(electra) if (name, fn) == ("ElectraGovernor", "cancel") else None
            error = revert_of(electra, deployed[name], item, args, stranger, values)
            checked += 1
            if error not in ACCESS_ERRORS:
                problems.append(f"{name}.{signature(item)} by a stranger: {error or 'did not revert'}")
    assert problems == [], "\n".join(problems)
    assert checked >= 60 and public >= 30  # every contract's surface was walked


def test_the_public_list_names_only_real_functions() -> None:
    for name, fns in PUBLIC.items():
        real = {item["name"] for item in state_changing(name)}
        assert set(fns) <= real, f"{name}: {set(fns) - real} are not state-changing functions of it"


def test_the_operator_passes_where_the_stranger_is_refused(electra: Electra, ids: tuple[int, int]) -> None:
    """The same calls made by the account that holds the role do not fail on access (a check that
    the refusals above are about the caller, not about the arguments)."""
    deployed = electra.deployment.addresses
    args = Args(*ids, known=HOST.address)
    anchor_item = next(i for i in state_changing("SessionAnchor") if i["name"] == "setAnchorer")
    timelock = deployed["ElectraTimelock"]
    assert revert_of(electra, deployed["SessionAnchor"], anchor_item, args, Account.create().address) in ACCESS_ERRORS
    assert revert_of(electra, deployed["SessionAnchor"], anchor_item, args, timelock) is None
    deactivate = next(i for i in state_changing("StationRegistry") if i["name"] == "deactivate")
    assert revert_of(electra, deployed["StationRegistry"], deactivate, args, HOST.address) is None
    withdraw = next(i for i in state_changing("PaymentHub") if i["name"] == "withdraw")
    assert revert_of(electra, deployed["PaymentHub"], withdraw, args, OWNER.address) not in ACCESS_ERRORS
