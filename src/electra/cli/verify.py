"""`electra verify` and `electra audit`: prove one session against the chain, or check the whole log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from electra.cli import common
from electra.cli.common import JsonOpt, console, emit, handles_errors
from electra.errors import InvalidInput

_MARK = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}


@handles_errors
def verify(
    session_id: Annotated[int | None, typer.Argument(help="The session to prove (its id).", show_default=False)] = None,
    offline: Annotated[
        Path | None,
        typer.Option(
            "--offline",
            help="Check this proof bundle with nothing but an RPC URL (no database).",
            exists=False,
            dir_okay=False,
        ),
    ] = None,
    rpc_url: Annotated[
        str | None, typer.Option("--rpc-url", help="With --offline: the chain's RPC (default: the configured one).")
    ] = None,
    anchor: Annotated[
        str | None, typer.Option("--anchor", help="Check against this SessionAnchor address, not the bundle's.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the proof bundle to this file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A session's record, leaf, Merkle proof, anchor and signed meter data, checked against the chain.

    `electra verify SESSION_ID` builds the bundle from this platform's store and checks it;
    `electra verify --offline FILE --rpc-url URL` checks a bundle someone gave you. Exit code 0 only
    if every check passed.
    """
    from electra.proofs.bundle import ProofBundle
    from electra.proofs.verifier import verify_bundle

    if (session_id is None) == (offline is None):
        raise InvalidInput("give a SESSION_ID or --offline FILE, not both or neither", "see `electra verify --help`")
    if offline is not None:
        try:
            text = offline.read_text()
        except OSError as exc:
            raise InvalidInput(f"cannot read {offline}: {exc.strerror}", "give the bundle's path") from exc
        bundle = ProofBundle.loads(text)
        url = rpc_url or common.settings().effective_rpc_url
    else:
        from electra.proofs.builder import build_bundle

        assert session_id is not None
        bundle = build_bundle(common.store_engine(), common.electra(), session_id)
        url = common.settings().effective_rpc_url
    if out is not None:
        out.write_text(bundle.dumps())
    result = verify_bundle(bundle, url, anchor_address=anchor)
    data: dict[str, Any] = result.to_json() | {"bundle": bundle.to_json()}

    def human() -> None:
        t = Table(
            title=f"session {bundle.session_id} (seq {bundle.seq}, charger {bundle.charger_id})", title_justify="left"
        )
        t.add_column("check")
        t.add_column("")
        t.add_column("detail", overflow="fold")
        for c in result.checks:
            t.add_row(c.name, _MARK[c.status], c.detail)
        console.print(t)
        r = bundle.record
        console.print(
            f"record: {r.energy_wh} Wh, {r.amount} base units of {r.asset}; leaf {bundle.leaf}", highlight=False
        )
        if bundle.anchor is not None:
            a = bundle.anchor
            console.print(
                f"anchor: SessionAnchor {a.contract} batch {a.batch_index} on chain {a.chain_id}, tx {a.tx_hash}",
                highlight=False,
            )
        if out is not None:
            console.print(f"bundle written to {out}; check it anywhere with `electra verify --offline {out}`")
        console.print("[bold green]verified[/]" if result.ok else "[bold red]NOT verified[/]")

    emit(data, as_json, human)
    if not result.ok:
        raise typer.Exit(code=1)


@handles_errors
def audit(
    meter_data: Annotated[
        bool, typer.Option("--meter-data/--no-meter-data", help="Also check every signed meter reading.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Walks the whole session log: every hash chain, record and batch, every anchored batch against
    SessionAnchor, and the signed meter data. Prints each break with its place; exit code 1 if any."""
    from electra.errors import DeploymentMissing
    from electra.proofs.audit import audit as run_audit

    engine = common.store_engine()
    try:
        e = common.electra()
        anchors, stations = e.anchors, e.stations
    except DeploymentMissing as exc:
        console.print(f"[yellow]no SessionAnchor on this chain ({exc.one_line()}): checking the database alone[/]")
        anchors = stations = None
    with console.status("auditing") as status:
        report = run_audit(engine, anchors, stations, meter_data=meter_data, progress=lambda s: status.update(s))

    def human() -> None:
        console.print(
            f"{report.records} records in {report.batches} batches, {report.anchors_checked} checked on-chain, "
            f"{report.signed_readings} signed readings of {report.sessions_with_meter_data} sessions",
            highlight=False,
        )
        for b in report.breaks:
            console.print(f"[bold red]{b.kind}[/] at {b.location()}: {b.detail}", highlight=False)
        console.print(
            "[bold green]the log holds together[/]" if report.ok else f"[bold red]{len(report.breaks)} break(s)[/]"
        )

    emit(report.to_json(), as_json, human)
    if not report.ok:
        raise typer.Exit(code=1)
