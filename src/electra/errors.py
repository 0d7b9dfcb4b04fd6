"""Electra's exceptions.

Every error Electra raises on purpose descends from :class:`ElectraError`. Each carries a
one-line ``cause`` and, where there is one, a ``fix`` the user can act on; the CLI prints the two
on one line and exits non-zero, with no traceback.

    ElectraError
    ├── ConfigError              settings that cannot work (bad key, default dev key on a real chain)
    ├── InvalidInput             a value a user or a device gave that breaks a rule
    ├── StoreError               the database failed a read or a write
    │   ├── StoreUnavailable     the database server does not answer, or is busy (writes are retried)
    │   ├── StoreFull            the disk under the database is full
    │   └── StoreReadOnly        the database or its directory cannot be written
    └── ChainError
        ├── ChainUnreachable     the RPC endpoint does not answer
        ├── WrongChain           the endpoint serves another chain id than expected
        ├── DeploymentMissing    no Electra contracts known for this chain
        ├── DevChainError        the embedded anvil could not be started or found
        ├── TransactionFailed    a transaction was mined but reverted, or never mined
        └── ContractReverted     a call reverted; ``error`` names the contract's custom error
"""

from __future__ import annotations

from typing import Any


class ElectraError(Exception):
    """Root of every error Electra raises on purpose."""

    def __init__(self, cause: str, fix: str | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def one_line(self) -> str:
        return f"{self.cause}; {self.fix}" if self.fix else self.cause


class ConfigError(ElectraError):
    """The configuration cannot work."""


class InvalidInput(ElectraError):
    """A value given by a user or a device breaks a rule."""


class StoreError(ElectraError):
    """The database failed a read or a write (see :func:`electra.store.db.store_error`)."""


class StoreUnavailable(StoreError):
    """The database server does not answer, or the database is locked for longer than it waits."""


class StoreFull(StoreError):
    """The disk (or quota) under the database is full: nothing more can be written."""


class StoreReadOnly(StoreError):
    """The database file or its directory cannot be written."""


class ChainError(ElectraError):
    """Something went wrong talking to the chain."""


class ChainUnreachable(ChainError):
    """The JSON-RPC endpoint does not answer."""


class WrongChain(ChainError):
    """The endpoint serves a different chain than the one configured."""


class DeploymentMissing(ChainError):
    """No Electra deployment is known for the connected chain."""


class DevChainError(ChainError):
    """The embedded dev chain could not be started, found or stopped."""


class TransactionFailed(ChainError):
    """A transaction was mined with status 0, or not mined in time."""


class ContractReverted(ChainError):
    """A contract call reverted with a custom error (or a reason string, or a panic)."""

    def __init__(self, error: str, args: dict[str, Any] | None = None, fix: str | None = None) -> None:
        self.error = error
        self.error_args = dict(args or {})
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.error_args.items())
        super().__init__(f"the contract reverted with {error}({shown})", fix)


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
