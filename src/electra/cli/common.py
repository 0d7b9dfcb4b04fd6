"""What every command shares: settings, connection, output, and turning errors into one line."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import requests
import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table
from rich.text import Text

from electra.chain.bindings import Electra
from electra.chain.client import ChainClient, connect
from electra.chain.deploy import load_deployment
from electra.chain.keys import account_from_hex, dev_account, load_or_create_key
from electra.config import Settings, load_settings
from electra.errors import ChainUnreachable, ElectraError, InvalidInput

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="ELECTRA_USER_KEY",
        help="Sender's private key (hex). Default: the operator key.",
    ),
]
AccountOpt = Annotated[
    int | None,
    typer.Option("--account", help="Send from anvil dev account N (dev chain only).", min=0, max=9),
]


@dataclass
class CliState:
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(**self.overrides)
        return self._settings


STATE = CliState()


def settings() -> Settings:
    return STATE.settings


def client() -> ChainClient:
    return connect(settings())


def electra() -> Electra:
    c = client()
    return Electra.of(c, load_deployment(settings(), c.chain_id))


def store_engine() -> Any:
    """The platform's database (ELECTRA_DB_URL, or SQLite under the data directory), migrated."""
    from electra.store.db import make_engine, migrate

    engine = make_engine(settings().effective_db_url)
    migrate(engine)
    return engine


def sender(c: ChainClient, key: str | None, account: int | None) -> LocalAccount:
    if key and account is not None:
        raise InvalidInput("both --key and --account given", "use one of them")
    if key:
        return account_from_hex(key, "--key")
    if account is not None:
        if not c.is_anvil:
            raise InvalidInput("--account works only on the anvil dev chain", "use --key on other chains")
        return dev_account(account)
    return c.account


def device_account(device_key: str | None, kind: str, name: str) -> tuple[LocalAccount, Path | None, bool]:
    """The device key given on the command line, or the one kept (or now created) in the data dir.

    Returns (account, key file or None, created).
    """
    if device_key:
        return account_from_hex(device_key, "--device-key"), None, False
    key_file = settings().keys_dir / kind / f"{name}.key"
    account, created = load_or_create_key(key_file)
    return account, key_file.resolve(), created


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Expected errors become one line on stderr (cause; fix) and exit code 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ElectraError as exc:
            fail(exc, exc)
        except requests.ConnectionError as exc:
            fail(
                ChainUnreachable(
                    f"lost the chain RPC at {settings().effective_rpc_url}",
                    "check that the node is up",
                ),
                exc,
            )

    return wrapper


def fail(exc: ElectraError, cause: BaseException | None = None) -> NoReturn:
    err_console.print(Text.assemble(("error: ", "bold red"), exc.one_line()), highlight=False, soft_wrap=True)
    raise typer.Exit(code=1) from cause


def emit(data: Any, as_json: bool, human: Callable[[], None] | None = None) -> None:
    if as_json or human is None:
        sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    else:
        human()


def _json_default(o: Any) -> Any:
    if isinstance(o, bytes):
        return "0x" + o.hex()
    raise TypeError(f"cannot serialize {type(o).__name__}")  # protocol: json.dumps(default=) wants TypeError


def kv_table(title: str, rows: list[tuple[str, Any]]) -> None:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold cyan")
    t.add_column()
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)
