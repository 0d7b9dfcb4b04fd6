"""`electra rewards`: usage-mining epochs from anchored sessions: compute, publish, show, claim, recompute."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from electra.cli import common
from electra.cli.common import JsonOpt, console, emit, handles_errors
from electra.errors import InvalidInput

rewards_app = typer.Typer(
    help="Usage-mining rewards: epochs from anchored sessions, claims with proofs.", no_args_is_help=True
)


def _ms(text: str) -> int:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{text!r} is not an ISO 8601 time", "e.g. 2026-12-01T00:00:00Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def _run(epoch: int, start: str, end: str) -> Any:
    from electra.rewards.epochs import compute

    return compute(common.store_engine(), common.electra(), epoch, _ms(start), _ms(end))


def _summary(run: Any) -> dict[str, Any]:
    r = run.result
    return {
        "epoch": run.params.epoch,
        "window": [run.params.start_ms, run.params.end_ms],
        "anchored_seqs": [run.params.first_seq, run.params.last_seq],
        "snapshot_block": run.params.snapshot_block,
        "sessions": len(r.sessions),
        "earning": sum(1 for s in r.sessions if s.amount),
        "total": str(r.total),
        "total_before_cap": str(r.total_before_cap),
        "root": None if run.epoch is None else "0x" + run.epoch.root.hex(),
        "amounts": {a: str(n) for a, n in sorted(r.amounts.items())},
        "published": run.published,
        "notes": run.notes,
    }


def _show(data: dict[str, Any]) -> None:
    console.print(
        f"epoch {data['epoch']}: {data['earning']} of {data['sessions']} sessions earn, total {data['total']} "
        f"ELC base units, root {data['root']}",
        highlight=False,
    )
    t = Table("account", "ELC base units")
    for a, n in data["amounts"].items():
        t.add_row(a, n)
    console.print(t)


@rewards_app.command("compute")
@handles_errors
def compute_(
    epoch: Annotated[int, typer.Option(help="The epoch number (the next one RewardsDistributor expects).")],
    start: Annotated[str, typer.Option("--from", help="Window start, ISO 8601 (UTC if no offset).")],
    end: Annotated[str, typer.Option("--to", help="Window end (exclusive).")],
    as_json: JsonOpt = False,
) -> None:
    """What the epoch pays, from the anchored sessions of the window; nothing is sent."""
    data = _summary(_run(epoch, start, end))
    emit(data, as_json, lambda: _show(data))


@rewards_app.command("publish")
@handles_errors
def publish_(
    epoch: Annotated[int, typer.Option(help="The epoch number.")],
    start: Annotated[str, typer.Option("--from", help="Window start, ISO 8601.")],
    end: Annotated[str, typer.Option("--to", help="Window end (exclusive).")],
    as_json: JsonOpt = False,
) -> None:
    """Computes the epoch, writes its document (claims and proofs) and publishes its root."""
    from electra.rewards.epochs import publish

    run = _run(epoch, start, end)
    path = publish(common.electra(), run, common.settings().data_dir)
    data = _summary(run) | {"document": str(path)}
    emit(data, as_json, lambda: (_show(data), console.print(f"published; document {path}")))


@rewards_app.command("show")
@handles_errors
def show(
    epoch: Annotated[int, typer.Argument(help="The epoch.")],
    account: Annotated[str | None, typer.Option(help="Only this account's claim.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A published epoch: on-chain root, total and claimed, and an account's claim with its proof."""
    from electra.domain.rewards import RewardEpoch
    from electra.rewards.epochs import document_path, load_document

    e = common.electra()
    on_chain = e.rewards.epoch(epoch)
    doc = load_document(document_path(common.settings().data_dir, epoch))
    tree = RewardEpoch.from_json(doc["epoch"])
    data: dict[str, Any] = {
        "epoch": epoch,
        "root": on_chain.root,
        "document_root": "0x" + tree.root.hex(),
        "total": str(on_chain.total),
        "claimed": str(on_chain.claimed),
    }
    if account:
        claim = tree.claim(account)
        data["claim"] = claim.to_json() | {"claimed": e.rewards.is_claimed(epoch, claim.account)}
    emit(data, as_json, lambda: console.print(data, highlight=False))


@rewards_app.command("claim")
@handles_errors
def claim(
    epoch: Annotated[int, typer.Argument(help="The epoch.")],
    account: Annotated[str, typer.Option("--for", help="Whose reward (anyone may send the claim).")],
    key: Annotated[str | None, typer.Option("--key", help="Hex key that pays the gas.")] = None,
    dev_account: Annotated[int | None, typer.Option("--account", help="Dev chain account index that sends.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Claims an account's reward of an epoch with its proof from the epoch document."""
    from electra.domain.rewards import RewardEpoch
    from electra.rewards.epochs import document_path, load_document

    e = common.electra()
    tree = RewardEpoch.from_json(load_document(document_path(common.settings().data_dir, epoch))["epoch"])
    c = tree.claim(account)
    sender = common.sender(e.client, key, dev_account) if (key or dev_account is not None) else None
    tx = e.rewards.claim(c, sender=sender)
    data = {"epoch": epoch, "account": c.account, "amount": str(c.amount), "tx": tx.tx_hash}
    emit(data, as_json, lambda: console.print(f"claimed {c.amount} ELC base units for {c.account} in {tx.tx_hash}"))


@rewards_app.command("recompute")
@handles_errors
def recompute_(
    epoch: Annotated[int, typer.Argument(help="The epoch to check.")],
    document: Annotated[Path | None, typer.Option(help="The epoch document (default: the one published here).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Computes the epoch again from the anchored session records and its published parameters,
    and compares the root with RewardsDistributor's. Exit code 1 if they differ."""
    from electra.rewards.epochs import document_path, load_document, recompute

    doc = load_document(document or document_path(common.settings().data_dir, epoch))
    r = recompute(common.store_engine(), common.electra(), doc)
    if r.epoch != epoch:
        raise InvalidInput(f"the document is of epoch {r.epoch}", f"give the document of epoch {epoch}")
    data = {
        "epoch": r.epoch,
        "recomputed_root": r.root,
        "published_root": r.published_root,
        "matches": r.matches,
        "differences": r.differences,
    }

    def human() -> None:
        console.print(f"recomputed {r.root}; published {r.published_root}", highlight=False)
        for d in r.differences:
            console.print(f"[red]{d}[/]", highlight=False)
        console.print(
            "[bold green]the published root is the recomputed one[/]" if r.matches else "[bold red]MISMATCH[/]"
        )

    emit(data, as_json, human)
    if not r.matches:
        raise typer.Exit(code=1)


@rewards_app.command("rules")
@handles_errors
def rules(as_json: JsonOpt = False) -> None:
    """The usage-mining rules in force: governed digest on RewardsDistributor, and the defaults."""
    from electra.domain.usage_mining import RewardParameters

    defaults = RewardParameters(1, 0, 1, 1, 0, 0)
    on_chain = common.electra().rewards.rules()
    data = {
        "governed_digest": "0x" + on_chain.hex(),
        "in_force": "defaults"
        if on_chain == b"\0" * 32
        else ("defaults" if on_chain == defaults.rules_digest() else "governed"),
        "defaults": defaults.rules(),
        "defaults_digest": "0x" + defaults.rules_digest().hex(),
    }
    emit(data, as_json, lambda: console.print(data, highlight=False))
