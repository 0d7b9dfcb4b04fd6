"""Keys: the operator's, users' and devices'. Anvil's well-known dev keys are only for anvil."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from electra.config import ANVIL_CHAIN_ID
from electra.errors import ConfigError, InvalidInput

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10


@cache
def dev_accounts() -> tuple[LocalAccount, ...]:
    """The accounts anvil funds by default (its public test mnemonic)."""
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(DEV_ACCOUNT_COUNT)
    )


def is_dev_key(account: LocalAccount) -> bool:
    return any(account.address == a.address for a in dev_accounts())


def dev_account(index: int) -> LocalAccount:
    if not 0 <= index < DEV_ACCOUNT_COUNT:
        raise InvalidInput(f"no dev account #{index}", f"use 0..{DEV_ACCOUNT_COUNT - 1}")
    return dev_accounts()[index]


def account_from_hex(key: str, what: str = "private key") -> LocalAccount:
    try:
        return Account.from_key(key.strip())
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"invalid {what}", "give 32 bytes as hex, e.g. 0x4c0883a6...") from exc


def refuse_dev_key_off_anvil(account: LocalAccount, chain_id: int) -> None:
    if chain_id != ANVIL_CHAIN_ID and is_dev_key(account):
        raise ConfigError(
            f"refusing a well-known anvil dev key ({account.address}) on chain id {chain_id}",
            "set ELECTRA_PRIVATE_KEY (or --key) to a key of your own",
        )


def load_or_create_key(path: Path) -> tuple[LocalAccount, bool]:
    """Loads a device key from ``path`` or creates one there (mode 0600). Returns (account, created)."""
    if path.exists():
        return account_from_hex(path.read_text(), f"key in {path}"), False
    path.parent.mkdir(parents=True, exist_ok=True)
    account = Account.create()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(account.key.hex() + "\n")
    return account, True
