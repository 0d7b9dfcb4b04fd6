"""`electra api-key`: API keys for operators and integrations of the REST API (docs/api.md).

A key is shown once, when it is made; the store keeps only its SHA-256."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from electra.api.auth import ROLES, ApiKeyBook
from electra.cli import common
from electra.cli.common import JsonOpt, console, emit, handles_errors, kv_table

apikey_app = typer.Typer(help="API keys for the REST API: operators and integrations.", no_args_is_help=True)


def _book() -> ApiKeyBook:
    return ApiKeyBook(common.store_engine())


def _when(at_ms: int | None) -> str:
    return "-" if at_ms is None else datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@apikey_app.command("create")
@handles_errors
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses it, e.g. 'fleet-dashboard'.")],
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.")] = "operator",
    as_json: JsonOpt = False,
) -> None:
    """Makes a key and prints it once (send it as `X-API-Key` or `Authorization: Bearer`)."""
    issued = _book().create(name, role)
    data = {**issued.key.to_json(issued.key.created_at_ms), "api_key": issued.secret}
    emit(data, as_json, lambda: _show_new(data, "API key created"))


def _show_new(data: dict[str, object], title: str) -> None:
    kv_table(title, [(k, v) for k, v in data.items() if v is not None])
    console.print("[yellow]The key is shown only now; the store keeps its hash.[/]")


@apikey_app.command("list")
@handles_errors
def list_keys(
    all_keys: Annotated[bool, typer.Option("--all", help="Also revoked and expired keys.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The keys (never their secrets)."""
    book = _book()
    now = int(book.clock() * 1000)
    keys = [k.to_json(now) for k in book.list(include_inactive=all_keys)]

    def human() -> None:
        t = Table(title="API keys", title_justify="left")
        for col in ("key id", "name", "role", "active", "created", "expires", "last used"):
            t.add_column(col)
        for k in keys:
            t.add_row(
                str(k["key_id"]),
                str(k["name"]),
                str(k["role"]),
                "yes" if k["active"] else "no",
                _when(k["created_at_ms"]),  # type: ignore[arg-type]
                _when(k["expires_at_ms"]),  # type: ignore[arg-type]
                _when(k["last_used_at_ms"]),  # type: ignore[arg-type]
            )
        console.print(t)

    emit({"keys": keys}, as_json, human)


@apikey_app.command("revoke")
@handles_errors
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `electra api-key list`).")], as_json: JsonOpt = False
) -> None:
    """Revokes a key at once."""
    book = _book()
    key = book.revoke(key_id)
    data = key.to_json(int(book.clock() * 1000))
    emit(data, as_json, lambda: console.print(f"revoked API key {key_id} ({key.name})", highlight=False))


@apikey_app.command("rotate")
@handles_errors
def rotate(
    key_id: Annotated[str, typer.Argument(help="The key to replace.")],
    grace_s: Annotated[int, typer.Option("--grace-s", min=0, help="The old key works this much longer.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """A new key with the same name and role; the old one stops now (or after --grace-s)."""
    issued = _book().rotate(key_id, grace_s)
    data = {**issued.key.to_json(issued.key.created_at_ms), "api_key": issued.secret, "replaces": key_id}
    emit(data, as_json, lambda: _show_new(data, "API key rotated"))
