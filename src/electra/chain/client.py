"""A small web3.py client: connect with checks, send signed transactions, decode custom errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import requests
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted
from web3.types import TxReceipt

from electra.chain import artifacts
from electra.chain.keys import account_from_hex, dev_account, refuse_dev_key_off_anvil
from electra.config import ANVIL_CHAIN_ID, Settings
from electra.errors import (
    ChainError,
    ChainUnreachable,
    ConfigError,
    ContractReverted,
    TransactionFailed,
    WrongChain,
)

RECEIPT_TIMEOUT_S = 120
# An estimate is taken at the pending block's timestamp; the mined block may differ, and with a
# timestamp clock (ERC20Votes checkpoints) a new timestamp can mean a fresh storage slot (+20k).
# Unused gas is refunded, so the headroom costs nothing but block space.
GAS_HEADROOM = 1.25
GAS_FLAT_HEADROOM = 30_000


@dataclass(frozen=True)
class _ErrorAbi:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]


def _abi_type(item: dict[str, Any]) -> str:
    t = str(item["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + t[len("tuple") :]
    return t


@cache
def _error_table() -> dict[bytes, _ErrorAbi]:
    """Every custom error of every Electra contract (and what they inherit), by selector."""
    table: dict[bytes, _ErrorAbi] = {}
    for name in artifacts.names():
        for item in artifacts.load(name).abi:
            if item["type"] != "error":
                continue
            types = tuple(_abi_type(i) for i in item["inputs"])
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table[selector] = _ErrorAbi(item["name"], types, tuple(i["name"] for i in item["inputs"]))
    return table


_PANIC_CODES = {
    0x01: "assert",
    0x11: "arithmetic overflow",
    0x12: "division by zero",
    0x32: "array index",
}


def decode_revert(data: bytes | str | None) -> ContractReverted:
    """Turns revert data into a ContractReverted naming the custom error and its arguments."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x")) if data.startswith("0x") else data.encode()
    if not data or len(data) < 4:
        return ContractReverted("EmptyRevert")
    selector, body = data[:4], data[4:]
    if selector == function_signature_to_4byte_selector("Error(string)"):
        (reason,) = abi_decode(["string"], body)
        return ContractReverted("Error", {"reason": reason})
    if selector == function_signature_to_4byte_selector("Panic(uint256)"):
        (code,) = abi_decode(["uint256"], body)
        return ContractReverted("Panic", {"code": hex(code), "meaning": _PANIC_CODES.get(code, "?")})
    err = _error_table().get(selector)
    if err is None:
        return ContractReverted("UnknownError", {"data": data})
    values = [
        to_checksum_address(v) if t == "address" else v
        for t, v in zip(err.types, abi_decode(list(err.types), body), strict=True)
    ]
    return ContractReverted(err.name, dict(zip(err.names, values, strict=True)))


class ChainClient:
    """One connection to one chain, with the operator's account as the default sender."""

    def __init__(self, w3: Web3, chain_id: int, account: LocalAccount, rpc_url: str) -> None:
        self.w3 = w3
        self.chain_id = chain_id
        self.account = account
        self.rpc_url = rpc_url

    @property
    def is_anvil(self) -> bool:
        return self.chain_id == ANVIL_CHAIN_ID

    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=artifacts.load(name).abi)

    def call(self, fn: ContractFunction) -> Any:
        try:
            return fn.call()
        except ContractLogicError as exc:
            raise self._reverted(exc) from exc

    def transact(self, fn: ContractFunction, sender: LocalAccount | None = None, value: int = 0) -> TxReceipt:
        """Estimates, signs with ``sender`` (the operator by default), sends and waits for the receipt."""
        return self._build_and_send(fn, sender or self.account, value)

    def deploy(self, name: str, *args: Any, sender: LocalAccount | None = None) -> tuple[str, TxReceipt]:
        art = artifacts.load(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        receipt = self._build_and_send(factory.constructor(*args), sender or self.account, 0)
        address = receipt["contractAddress"]
        if address is None:
            raise TransactionFailed(f"deploying {name} gave no contract address")
        return str(address), receipt

    def chain_time(self) -> int:
        """The latest block's timestamp: the clock deadlines and expiries are checked against."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def rpc(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in response:
            raise ChainError(f"{method} failed: {response['error']}")
        return response.get("result")

    def _build_and_send(self, fn: Any, sender: LocalAccount, value: int) -> TxReceipt:
        """``fn`` is a contract function call or a constructor call; both build the same way."""
        refuse_dev_key_off_anvil(sender, self.chain_id)
        params: dict[str, Any] = {"from": sender.address, "chainId": self.chain_id, "nonce": self._nonce(sender)}
        if value:
            params["value"] = value
        try:
            tx = fn.build_transaction(params)
        except ContractLogicError as exc:
            raise self._reverted(exc) from exc
        tx["gas"] = int(tx["gas"] * GAS_HEADROOM) + GAS_FLAT_HEADROOM
        return self._send(tx, sender)

    def _nonce(self, sender: LocalAccount) -> int:
        return int(self.w3.eth.get_transaction_count(sender.address, "pending"))

    def _send(self, tx: Any, sender: LocalAccount) -> TxReceipt:
        signed = sender.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S, poll_latency=0.05)
        except TimeExhausted as exc:
            raise TransactionFailed(
                f"transaction {tx_hash.hex()} not mined within {RECEIPT_TIMEOUT_S} s",
                "check the chain and the account's gas price; it may still be mined",
            ) from exc
        if receipt["status"] != 1:
            why = " out of gas" if int(receipt["gasUsed"]) >= int(tx["gas"]) else ""
            raise TransactionFailed(
                f"transaction 0x{tx_hash.hex().removeprefix('0x')} reverted{why} in block {receipt['blockNumber']}",
                "the chain's state changed between estimate and inclusion; retry",
            )
        return receipt

    @staticmethod
    def _reverted(exc: ContractLogicError) -> ContractReverted:
        data = getattr(exc, "data", None)
        if isinstance(data, str) and data.startswith("0x"):
            return decode_revert(data)
        message = str(getattr(exc, "message", None) or exc)
        reason = message.removeprefix("execution reverted: ").removeprefix("execution reverted")
        return ContractReverted("Error", {"reason": reason.strip() or "no reason"})


def connect(settings: Settings, key: LocalAccount | None = None) -> ChainClient:
    """Connects to the configured chain and checks it: reachable, the expected chain id, a usable key."""
    url = settings.effective_rpc_url
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": settings.rpc_timeout_s}))
    try:
        chain_id = int(w3.eth.chain_id)
    except (requests.ConnectionError, requests.Timeout) as exc:
        fix = (
            "start the dev chain with `electra chain up` (or `make run`)"
            if settings.uses_dev_chain
            else "check ELECTRA_RPC_URL and that the node is up"
        )
        raise ChainUnreachable(f"cannot reach the chain RPC at {url}", fix) from exc
    if settings.chain_id is not None and chain_id != settings.chain_id:
        raise WrongChain(
            f"the RPC at {url} serves chain id {chain_id}, but ELECTRA_CHAIN_ID is {settings.chain_id}",
            "point ELECTRA_RPC_URL at the right chain or fix ELECTRA_CHAIN_ID",
        )
    if key is None:
        if settings.private_key is not None:
            key = account_from_hex(settings.private_key.get_secret_value(), "ELECTRA_PRIVATE_KEY")
        elif chain_id == ANVIL_CHAIN_ID:
            key = dev_account(0)
        else:
            raise ConfigError(
                f"no operator key for chain id {chain_id}",
                "set ELECTRA_PRIVATE_KEY to the key Electra should send transactions with",
            )
    refuse_dev_key_off_anvil(key, chain_id)
    return ChainClient(w3, chain_id, key, url)


@contextmanager
def explained_by(fix: Callable[[ContractReverted], str | None]) -> Iterator[None]:
    """Re-raises a contract's custom error with the fix a binding knows for it (the client
    already decodes the error; each binding says what to do about its own)."""
    try:
        yield
    except ContractReverted as exc:
        raise ContractReverted(exc.error, exc.error_args, fix(exc)) from exc
