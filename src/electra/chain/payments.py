"""PaymentHub and the ERC-20 assets it holds: deposits, charge authorizations, batched settlement.

A vehicle (its device key, or its owner) signs a :class:`ChargeAuthorization`; the platform's
settler sends many finished sessions in one ``settleBatch`` and gets one :class:`SettlementOutcome`
per entry back. The rules (nonces, rejection codes, fees, netting) are in docs/payments.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from electra.chain import eip712
from electra.chain.bindings import TxResult
from electra.chain.client import GAS_FLAT_HEADROOM, GAS_HEADROOM, RECEIPT_TIMEOUT_S, ChainClient
from electra.domain.tariff import TariffBounds
from electra.errors import InvalidInput, TransactionFailed

# A session's authorization has to outlive the session and the next settlement run.
AUTHORIZATION_LIFETIME_S = 24 * 3600
MAX_UINT64 = 2**64 - 1
# The packed entry carries 64 bits of nonce; PaymentHub settles nonces up to 2^32 - 1 only (its
# slot keeps the last one in 32 bits) and rejects larger ones with NonceOutOfRange.
MAX_NONCE = 2**32 - 1


class Rejection(IntEnum):
    """PaymentHub.Rejection: why an entry of a batch was not settled (0: it was)."""

    NONE = 0
    ALREADY_SETTLED = 1
    EXPIRED = 2
    OVER_LIMIT = 3
    NONCE_USED = 4
    INVALID_SIGNATURE = 5
    INSUFFICIENT_BALANCE = 6
    UNKNOWN_CHARGER = 7
    NONCE_OUT_OF_RANGE = 8


@dataclass(frozen=True)
class ChargeAuthorization:
    """What the vehicle signs: one session at one charger may cost at most ``max_amount``."""

    vehicle_id: int
    charger_id: int
    asset: str
    max_amount: int
    expiry: int
    nonce: int

    def typed_data(self, chain_id: int, hub: str) -> dict[str, Any]:
        return eip712.charge_authorization(
            self.vehicle_id, self.charger_id, self.asset, self.max_amount, self.expiry, self.nonce, chain_id, hub
        )


@dataclass(frozen=True)
class SignedAuthorization:
    authorization: ChargeAuthorization
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        """What a vehicle hands to the platform (integers as strings: amounts exceed JSON's safe range)."""
        a = self.authorization
        return {
            "vehicleId": str(a.vehicle_id),
            "chargerId": str(a.charger_id),
            "asset": a.asset,
            "maxAmount": str(a.max_amount),
            "expiry": str(a.expiry),
            "nonce": str(a.nonce),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignedAuthorization:
        try:
            auth = ChargeAuthorization(
                int(data["vehicleId"]),
                int(data["chargerId"]),
                to_checksum_address(data["asset"]),
                int(data["maxAmount"]),
                int(data["expiry"]),
                int(data["nonce"]),
            )
            return cls(auth, bytes(HexBytes(data["signature"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed charge authorization: {exc}") from exc


@dataclass(frozen=True)
class SessionCharge:
    """One entry of a batch: a finished session, its final amount and its record in the session log."""

    session_id: int
    authorization: SignedAuthorization
    amount: int
    record_hash: bytes

    def pack(self) -> bytes:
        """The entry as PaymentHub.settleBatch reads it (docs/payments.md): 98 bytes, then the signature."""
        a = self.authorization.authorization
        sig = self.authorization.signature
        fields = (
            ("session id", self.session_id, 8),
            ("vehicle id", a.vehicle_id, 8),
            ("charger id", a.charger_id, 8),
            ("nonce", a.nonce, 8),
            ("expiry", a.expiry, 8),
            ("max amount", a.max_amount, 12),
            ("amount", self.amount, 12),
        )
        out = bytearray()
        for name, value, size in fields:
            if not 0 <= value < 1 << (8 * size):
                raise InvalidInput(f"{name} {value} does not fit the {8 * size}-bit field of a settlement entry")
            out += value.to_bytes(size, "big")
        if len(self.record_hash) != 32:
            raise InvalidInput(f"record hash must be 32 bytes, not {len(self.record_hash)}")
        if len(sig) >= 1 << 16:
            raise InvalidInput(f"signature of {len(sig)} bytes is too long for a settlement entry")
        return bytes(out) + bytes(self.record_hash) + len(sig).to_bytes(2, "big") + bytes(sig)


@dataclass(frozen=True)
class SettlementOutcome:
    session_id: int
    reason: Rejection

    @property
    def settled(self) -> bool:
        return self.reason is Rejection.NONE


@dataclass(frozen=True)
class BatchResult:
    tx: TxResult
    outcomes: list[SettlementOutcome]
    gross_amount: int
    fee_amount: int
    credits: dict[str, int]  # charger holder -> net amount credited by this batch

    @property
    def settled(self) -> list[int]:
        return [o.session_id for o in self.outcomes if o.settled]

    @property
    def rejected(self) -> dict[int, Rejection]:
        return {o.session_id: o.reason for o in self.outcomes if not o.settled}


class Erc20Binding:
    """Any ERC-20 asset (ELC, ElectraUSD, or a real stablecoin on a public chain)."""

    abi_name = "ElectraUSD"  # its ABI has every standard ERC-20 and EIP-2612 function

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract(self.abi_name, address)
        self.address = self.contract.address

    def balance_of(self, account: str) -> int:
        return int(self.client.call(self.contract.functions.balanceOf(account)))

    def allowance(self, owner: str, spender: str) -> int:
        return int(self.client.call(self.contract.functions.allowance(owner, spender)))

    def approve(self, spender: str, amount: int, sender: LocalAccount | None = None) -> TxResult:
        return TxResult.of(self.client.transact(self.contract.functions.approve(spender, amount), sender=sender))

    def transfer(self, to: str, amount: int, sender: LocalAccount | None = None) -> TxResult:
        return TxResult.of(self.client.transact(self.contract.functions.transfer(to, amount), sender=sender))

    def total_supply(self) -> int:
        return int(self.client.call(self.contract.functions.totalSupply()))

    def permit_message(self, owner: str, spender: str, amount: int, deadline: int) -> dict[str, Any]:
        """EIP-2612 Permit typed data for this token."""
        f = self.contract.functions
        name = str(self.client.call(f.name()))
        nonce = int(self.client.call(f.nonces(owner)))
        return eip712.permit(name, owner, spender, amount, nonce, deadline, self.client.chain_id, self.address)


class StablecoinBinding(Erc20Binding):
    """ElectraUSD: the dev chain's fiat-backed stablecoin (6 decimals), minted against top-ups."""

    def mint(self, to: str, amount: int, top_up_id: bytes = b"\0" * 32, sender: LocalAccount | None = None) -> TxResult:
        fn = self.contract.functions.mint(to, amount, top_up_id)
        return TxResult.of(self.client.transact(fn, sender=sender))


class PaymentHubBinding:
    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract("PaymentHub", address)
        self.address = self.contract.address

    # ------------------------------------------------------------ vehicles' money

    def deposit(
        self, vehicle_id: int, asset: str, amount: int, sender: LocalAccount | None = None, approve: bool = True
    ) -> TxResult:
        """Deposits for a vehicle from ``sender`` (the operator by default), approving first if needed."""
        payer = sender or self.client.account
        if approve and Erc20Binding(self.client, asset).allowance(payer.address, self.address) < amount:
            Erc20Binding(self.client, asset).approve(self.address, amount, sender=payer)
        fn = self.contract.functions.deposit(vehicle_id, asset, amount)
        return TxResult.of(self.client.transact(fn, sender=payer))

    def deposit_with_permit(
        self, vehicle_id: int, asset: str, amount: int, owner: LocalAccount, deadline: int | None = None
    ) -> TxResult:
        """Deposits with an EIP-2612 permit that ``owner`` signs here: one transaction, no approval."""
        deadline = deadline if deadline is not None else self.chain_time() + 3600
        typed = Erc20Binding(self.client, asset).permit_message(owner.address, self.address, amount, deadline)
        v, r, s = eip712.sign_vrs(owner, typed)
        fn = self.contract.functions.depositWithPermit(vehicle_id, asset, amount, deadline, v, r, s)
        return TxResult.of(self.client.transact(fn, sender=owner))

    def withdraw(
        self, vehicle_id: int, asset: str, amount: int, owner: LocalAccount, to: str | None = None
    ) -> TxResult:
        """The vehicle's owner takes unused balance back."""
        fn = self.contract.functions.withdraw(vehicle_id, asset, amount, to or owner.address)
        return TxResult.of(self.client.transact(fn, sender=owner))

    def account(self, vehicle_id: int, asset: str) -> tuple[int, int]:
        """(balance in base units, last nonce used) of a vehicle in an asset."""
        balance, nonce = self.client.call(self.contract.functions.accountOf(vehicle_id, asset))
        return int(balance), int(nonce)

    def balance(self, vehicle_id: int, asset: str) -> int:
        return self.account(vehicle_id, asset)[0]

    def next_nonce(self, vehicle_id: int, asset: str) -> int:
        return self.account(vehicle_id, asset)[1] + 1

    # ------------------------------------------------------------ authorizations

    def authorization(
        self,
        vehicle_id: int,
        charger_id: int,
        asset: str,
        max_amount: int,
        expiry: int | None = None,
        nonce: int | None = None,
    ) -> ChargeAuthorization:
        """An authorization with the chain's next nonce and a day's lifetime unless given."""
        if nonce is None:
            nonce = self.next_nonce(vehicle_id, asset)
        if expiry is None:
            expiry = self.chain_time() + AUTHORIZATION_LIFETIME_S
        if not (0 < nonce <= MAX_UINT64 and 0 <= expiry <= MAX_UINT64):
            raise InvalidInput(f"nonce {nonce} and expiry {expiry} must fit in 64 bits (nonce from 1)")
        if max_amount < 0:
            raise InvalidInput(f"negative max amount {max_amount}")
        return ChargeAuthorization(vehicle_id, charger_id, to_checksum_address(asset), max_amount, expiry, nonce)

    def sign(self, signer: LocalAccount, authorization: ChargeAuthorization) -> SignedAuthorization:
        """Signs with the vehicle's device key, its owner's key, or the key behind an ERC-1271 owner."""
        typed = authorization.typed_data(self.client.chain_id, self.address)
        return SignedAuthorization(authorization, eip712.sign(signer, typed))

    def authorize(
        self, signer: LocalAccount, vehicle_id: int, charger_id: int, asset: str, max_amount: int, **kw: Any
    ) -> SignedAuthorization:
        return self.sign(signer, self.authorization(vehicle_id, charger_id, asset, max_amount, **kw))

    def digest(self, authorization: ChargeAuthorization) -> bytes:
        """The EIP-712 digest as the contract computes it."""
        a = authorization
        fn = self.contract.functions.authorizationDigest(
            a.vehicle_id, a.charger_id, a.asset, a.max_amount, a.expiry, a.nonce
        )
        return bytes(self.client.call(fn))

    # ------------------------------------------------------------ settlement

    def settle_batch(
        self,
        asset: str,
        charges: Sequence[SessionCharge],
        sender: LocalAccount | None = None,
        access_list: bool = False,
    ) -> BatchResult:
        """Settles the sessions in one transaction; bad entries are skipped, each with its reason.

        ``access_list`` attaches an EIP-2930 access list from ``eth_createAccessList``: every storage
        slot the batch touches (vehicles' accounts, devices in the ledger, chargers' holders) is then
        paid 1,900 gas up front instead of 2,100 at first touch, about 400 gas less per session."""
        if not charges:
            raise InvalidInput("nothing to settle")
        ids = [c.session_id for c in charges]
        if len(set(ids)) != len(ids):
            # The contract handles a repeat (it is rejected as already settled), but outcomes are
            # matched to entries by session id, so a batch must not repeat one.
            raise InvalidInput("a batch repeats a session id", "settle each session once per batch")
        fn = self.contract.functions.settleBatch(asset, b"".join(c.pack() for c in charges))
        if access_list:
            return self._result(self._transact_with_access_list(fn, sender or self.client.account), ids)
        return self._result(self.client.transact(fn, sender=sender), ids)

    def settle(self, asset: str, charge: SessionCharge, sender: LocalAccount | None = None) -> BatchResult:
        """Settles one session; a failed check raises ContractReverted naming the PaymentHub error."""
        fn = self.contract.functions.settle(asset, charge.pack())
        return self._result(self.client.transact(fn, sender=sender), [charge.session_id])

    def _transact_with_access_list(self, fn: ContractFunction, sender: LocalAccount) -> TxReceipt:
        w3 = self.client.w3
        nonce = int(w3.eth.get_transaction_count(sender.address, "pending"))
        params: Any = {"from": sender.address, "chainId": self.client.chain_id, "nonce": nonce}
        tx: Any = fn.build_transaction(params)
        created = self.client.rpc(
            "eth_createAccessList", {"from": sender.address, "to": tx["to"], "data": tx["data"]}, "latest"
        )
        tx["accessList"] = created["accessList"]
        tx["gas"] = int(int(created["gasUsed"], 16) * GAS_HEADROOM) + GAS_FLAT_HEADROOM
        tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S, poll_latency=0.05)
        if receipt["status"] != 1:
            raise TransactionFailed(
                f"settlement transaction 0x{bytes(tx_hash).hex()} reverted in block {receipt['blockNumber']}",
                "the chain's state changed between the access list and inclusion; retry",
            )
        return receipt

    def is_settled(self, session_id: int) -> bool:
        return bool(self.client.call(self.contract.functions.isSettled(session_id)))

    def batch_result(self, receipt: TxReceipt, session_ids: Sequence[int]) -> BatchResult:
        """The outcome of a mined settleBatch or settle transaction whose entries carried ``session_ids``
        in order (for a worker that sends the transaction itself)."""
        return self._result(receipt, list(session_ids))

    def _result(self, receipt: TxReceipt, ids: list[int]) -> BatchResult:
        events = self.contract.events
        rejected = {
            int(e["args"]["sessionId"]): Rejection(int(e["args"]["reason"]))
            for e in events.SettlementRejected().process_receipt(receipt, errors=DISCARD)
        }
        batch = events.BatchSettled().process_receipt(receipt, errors=DISCARD)[0]["args"]
        credits: dict[str, int] = {}
        for e in events.EarningsCredited().process_receipt(receipt, errors=DISCARD):
            credits[str(e["args"]["payee"])] = credits.get(str(e["args"]["payee"]), 0) + int(e["args"]["amount"])
        return BatchResult(
            TxResult.of(receipt),
            [SettlementOutcome(i, rejected.get(i, Rejection.NONE)) for i in ids],
            int(batch["grossAmount"]),
            int(batch["feeAmount"]),
            credits,
        )

    # ------------------------------------------------------------ charger holders and the treasury

    def earnings(self, payee: str, asset: str) -> int:
        return int(self.client.call(self.contract.functions.earningsOf(payee, asset)))

    def withdraw_earnings(self, asset: str, payee: LocalAccount, to: str | None = None) -> tuple[int, TxResult]:
        """Pays the holder's whole earnings in ``asset``. Returns (amount, tx)."""
        receipt = self.client.transact(self.contract.functions.withdrawEarnings(asset, to or payee.address), payee)
        args = self.contract.events.EarningsWithdrawn().process_receipt(receipt, errors=DISCARD)[0]["args"]
        return int(args["amount"]), TxResult.of(receipt)

    def fees_accrued(self, asset: str) -> int:
        return int(self.client.call(self.contract.functions.feesAccrued(asset)))

    def sweep_fees(self, asset: str, sender: LocalAccount | None = None) -> tuple[int, TxResult]:
        """Sends the accrued fees to the treasury; anyone may do it."""
        receipt = self.client.transact(self.contract.functions.sweepFees(asset), sender=sender)
        args = self.contract.events.FeesSwept().process_receipt(receipt, errors=DISCARD)[0]["args"]
        return int(args["amount"]), TxResult.of(receipt)

    # ------------------------------------------------------------ parameters and governance

    def protocol_fee_bps(self) -> int:
        return int(self.client.call(self.contract.functions.protocolFeeBps()))

    def max_fee_bps(self) -> int:
        return int(self.client.call(self.contract.functions.MAX_FEE_BPS()))

    def treasury(self) -> str:
        return str(self.client.call(self.contract.functions.treasury()))

    def guardian(self) -> str:
        return str(self.client.call(self.contract.functions.guardian()))

    def commission_hook(self) -> str:
        return str(self.client.call(self.contract.functions.commissionHook()))

    def is_settler(self, account: str) -> bool:
        return bool(self.client.call(self.contract.functions.isSettler(account)))

    def tariff_bounds(self, asset: str) -> TariffBounds | None:
        """The DAO's ceilings on hosts' tariffs in ``asset``, or None if governance published none."""
        values = [int(v) for v in self.client.call(self.contract.functions.tariffBounds(asset))]
        return TariffBounds(*values) if any(values) else None

    def is_asset_allowed(self, asset: str) -> bool:
        return bool(self.client.call(self.contract.functions.isAssetAllowed(asset)))

    def paused(self) -> bool:
        return bool(self.client.call(self.contract.functions.paused()))

    def governance_call(self, setter: str, *args: Any) -> tuple[str, bytes]:
        """(target, calldata) of a governed setter, for a proposal through the governor and timelock.

        Setters: setProtocolFee(bps), setTariffBounds(asset, (maxEnergyPricePerWh, maxTimePricePerHour,
        maxIdlePricePerHour, maxSessionFee)), setAssetAllowed(asset, allowed), setCommissionHook(hook),
        setGuardian(guardian), setSettler(account, allowed), setTreasury(treasury), unpause().
        """
        if setter not in GOVERNED_SETTERS:
            raise InvalidInput(f"{setter} is not a governed PaymentHub setter", f"one of {', '.join(GOVERNED_SETTERS)}")
        return self.address, bytes(HexBytes(self.contract.encode_abi(setter, args=list(args))))

    def send_governed(self, setter: str, *args: Any, sender: LocalAccount | None = None) -> TxResult:
        """Sends a governed setter directly. Only the owner (the timelock) succeeds; anyone else gets
        ContractReverted(OwnableUnauthorizedAccount)."""
        self.governance_call(setter, *args)
        return TxResult.of(self.client.transact(getattr(self.contract.functions, setter)(*args), sender=sender))

    def pause(self, sender: LocalAccount | None = None) -> TxResult:
        """The guardian (or governance) stops deposits, withdrawals and settlement."""
        return TxResult.of(self.client.transact(self.contract.functions.pause(), sender=sender))

    def chain_time(self) -> int:
        """The latest block's timestamp: what the contract compares expiries with (a dev chain's
        clock may run ahead of the wall clock)."""
        return int(self.client.w3.eth.get_block("latest")["timestamp"])


GOVERNED_SETTERS = (
    "setProtocolFee",
    "setTariffBounds",
    "setAssetAllowed",
    "setCommissionHook",
    "setGuardian",
    "setSettler",
    "setTreasury",
    "unpause",
)
