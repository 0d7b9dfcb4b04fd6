"""`electra site`: a site's grid connection, shared by its chargers (load balancing)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from electra.cli import common
from electra.cli.common import JsonOpt, console, emit, handles_errors
from electra.errors import InvalidInput

site_app = typer.Typer(
    help="Sites: a grid connection limit shared among chargers with OCPP profiles.", no_args_is_help=True
)


@site_app.command("create")
@handles_errors
def create(
    site_id: Annotated[str, typer.Argument(help="A name for the site, e.g. DEPOT-1.")],
    limit_kw: Annotated[int | None, typer.Option("--limit-kw", help="Power limit of the connection.")] = None,
    limit_a: Annotated[int | None, typer.Option("--limit-a", help="Current limit per phase (L1-L3).")] = None,
    voltage: Annotated[int, typer.Option(help="Phase-to-neutral voltage.")] = 230,
    min_current_a: Annotated[int, typer.Option(help="Below this a session is paused (IEC 61851: 6 A).")] = 6,
    name: Annotated[str, typer.Option(help="A readable name.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Creates or changes a site and its limit; the running central system applies it within 2 s."""
    from electra.intelligence.load_balancing import Site, SiteBook

    site = Site(
        site_id, name or site_id, None if limit_kw is None else limit_kw * 1000, limit_a, voltage, min_current_a
    )
    SiteBook(common.store_engine()).put_site(site)
    emit(vars(site), as_json, lambda: console.print(f"site {site_id}: limit {_limit(site)}"))


@site_app.command("add-charger")
@handles_errors
def add_charger(
    site_id: Annotated[str, typer.Argument()],
    charger_id: Annotated[str, typer.Argument()],
    phases: Annotated[str, typer.Option(help="L1L2L3 (three-phase) or the one phase it is on: L1, L2, L3.")] = "L1L2L3",
    max_kw: Annotated[int, typer.Option("--max-kw", help="What the charger can draw.")] = 22,
    as_json: JsonOpt = False,
) -> None:
    """Puts a charger behind the site's connection."""
    from electra.intelligence.load_balancing import SiteBook, SiteCharger, parse_phases

    if max_kw <= 0:
        raise InvalidInput(f"--max-kw {max_kw}", "give the charger's power in kW")
    c = SiteBook(common.store_engine()).put_charger(
        SiteCharger(charger_id, site_id, parse_phases(phases), max_kw * 1000)
    )
    emit(
        vars(c) | {"phases": "".join(c.phases)},
        as_json,
        lambda: console.print(f"{charger_id} is behind site {site_id}"),
    )


@site_app.command("show")
@handles_errors
def show(site_id: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """The site, its chargers, and the share each active session would get now."""
    from electra.intelligence.load_balancing import LoadBalancer, SiteBook

    engine = common.store_engine()
    book = SiteBook(engine)
    site = book.site(site_id)
    if site is None:
        raise InvalidInput(f"no site {site_id}", "create it with `electra site create`")
    chargers = book.chargers(site_id)
    balancer = LoadBalancer(engine)  # planning only: nothing is sent
    sessions = balancer.active_sessions([c.charger_id for c in chargers])
    plan = balancer.plan(site, chargers, sessions)
    data = {
        "site": vars(site),
        "chargers": [vars(c) | {"phases": "".join(c.phases)} for c in chargers],
        "sessions": [
            {"session_id": x.session_id, "charger_id": x.charger_id, "limit": plan.get(x.session_id), "unit": site.unit}
            for x in sessions
        ],
    }

    def human() -> None:
        console.print(f"site {site_id}: limit {_limit(site)}, {len(chargers)} chargers", highlight=False)
        t = Table("session", "charger", f"share ({site.unit})")
        for x in data["sessions"]:  # type: ignore[attr-defined]
            t.add_row(str(x["session_id"]), x["charger_id"], str(x["limit"]))
        console.print(t)

    emit(data, as_json, human)


def _limit(site: object) -> str:
    w, a = getattr(site, "limit_w", None), getattr(site, "limit_a", None)
    return f"{w // 1000} kW" if w is not None else f"{a} A per phase"
