"""The web app in a real browser (Debian's chromium, headless, driven by Playwright) against a
running platform on anvil with simulated chargers (tests/webplatform.py).

Journeys: a driver finds a charger on the map, tops up, charges, stops, gets the receipt and
verifies it on-chain; a host registers a charger, sets its tariff and lease, and sees earnings and
utilization; a DAO member proposes a parameter change and votes. Every page is also checked with
axe-core (WCAG 2 A and AA), by keyboard, and at a phone's size.

Any console error, page error, failed request, HTTP error answer or request to another origin
fails the test. Screenshots of each page land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.messages import encode_defunct
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.cli import common
from electra.config import Settings
from electra.payments.tariffs import LeaseBook, TariffBook
from electra.store.models import SessionRecord
from tests.conftest import free_port
from tests.webplatform import WALLET_JS, Platform, PlatformThread, TestWallet, platform_env

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = ["/", "/driver", "/host", "/dao"]
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def platform(
    session_electra: Electra, chain_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    e = session_electra
    snap = e.client.rpc("evm_snapshot")
    env = platform_env(tmp_path_factory.mktemp("web"), chain_settings, e.client.chain_id, free_port(), free_port())
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        common.STATE.overrides, common.STATE._settings = {}, None
        thread = PlatformThread(common.settings(), dev_account(1), dev_account(2))
        thread.start()
        assert thread.ready.wait(240), "the platform did not come up in 4 minutes"
        if thread.failure is not None:
            raise thread.failure
        assert thread.platform is not None
        try:
            yield thread.platform
        finally:
            thread.stop()
            common.STATE._settings = None
    assert thread.failure is None, thread.failure
    assert thread.platform.errors == [], thread.platform.errors
    assert e.client.rpc("evm_revert", snap) is True


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def launch(p: Playwright) -> Browser:
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


WATCHES: list[Watch] = []


class Watch:
    """Everything that went wrong in a page, and every request it made."""

    def _failed(self, request: Any) -> None:
        # The live event stream (SSE) is cut when the page navigates away: that is how it ends.
        if request.url.endswith("/api/v1/events") or "/api/v1/events?" in request.url:
            if "ERR_ABORTED" in str(request.failure):
                return
        self.problems.append(f"request failed: {request.method} {request.url} {request.failure}")

    def __init__(self, page: Page, origin: str) -> None:
        WATCHES.append(self)
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.origin = origin
        self.console: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("request", lambda r: self.requests.append(r.url))

    def _console(self, m: Any) -> None:
        self.console.append(f"{m.type}: {m.text}")
        if m.type == "error":
            self.problems.append(f"console {m.type}: {m.text}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def check(self) -> None:
        foreign = [u for u in self.requests if not u.startswith(self.origin) and not u.startswith("data:")]
        assert foreign == [], f"requests to other origins: {foreign}"
        assert self.problems == [], self.problems


def open_context(browser: Browser, platform: Platform, wallet: TestWallet | None, **kw: Any) -> BrowserContext:
    ctx = browser.new_context(base_url=platform.url, **kw)
    ctx.set_default_timeout(TIMEOUT_MS)
    if wallet is not None:
        ctx.expose_function("__electraWallet", wallet.handle)
        ctx.add_init_script(WALLET_JS)
    return ctx


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def ready(page: Page, path: str) -> None:
    page.goto(path)
    try:
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
    except AssertionError as exc:
        w = WATCHES[-1] if WATCHES else None
        raise AssertionError(f"{path} did not get ready: {w.problems if w else ''} {w.console if w else ''}") from exc


def until(page: Page, expression: str, timeout_s: float = TIMEOUT_MS / 1000) -> None:
    """Waits for a JavaScript expression to hold (wait_for_function evaluates strings, which the
    pages' Content-Security-Policy forbids; evaluate goes through the debugger protocol)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {expression}")
        page.wait_for_timeout(100)


def connect(page: Page) -> None:
    page.get_by_role("button", name="Connect wallet").click()
    expect(page.locator("#signin-state")).to_be_visible()


def busiest_charger(platform: Platform) -> str:
    with Session(platform.engine) as s:
        counts = s.execute(
            select(SessionRecord.charger_id, func.count())
            .group_by(SessionRecord.charger_id)
            .order_by(func.count().desc())
        ).all()
    return next(c for c, _ in counts if c in platform.fleet_chargers)


def axe_violations(page: Page) -> list[dict[str, Any]]:
    page.evaluate(AXE.read_text() + "\n;0")
    result = page.evaluate(
        "async () => (await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}}))"
        ".violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    return list(result)


# ---------------------------------------------------------------- the map


def test_map_shows_clustered_chargers_coloured_by_status_with_the_apis_filters(
    browser: Browser, platform: Platform
) -> None:
    ctx = open_context(browser, platform, None, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    watch = Watch(page, platform.url)
    ready(page, "/")
    for _ in range(3):  # out to where the fleet's chargers, 10 km apart, share clusters
        before = int(page.locator("body").get_attribute("data-searched") or "0")
        page.get_by_role("button", name="Zoom out").click()
        until(page, f"Number(document.body.dataset.searched) > {before}")
    # The basemap is Natural Earth drawn by Leaflet from the vendored TopoJSON: no tiles anywhere.
    assert page.locator(".leaflet-overlay-pane canvas").count() >= 1
    assert page.locator(".leaflet-tile").count() == 0
    assert any(u.endswith("/static/vendor/world-atlas/countries-50m.json") for u in watch.requests)
    ids = page.locator("#results > li").evaluate_all("els => els.map(e => e.dataset.charger)")
    for charger in [*platform.fleet_chargers, platform.live_charger]:
        assert charger in ids
    # Every result is on the map, in a cluster or as a marker of its own.
    clustered = sum(int(t) for t in page.locator(".station-cluster > span:first-child").all_inner_texts())
    single = page.locator(".station-marker").count()
    assert clustered + single == len(ids)
    assert clustered > 0, "chargers this close together are clustered at this zoom"
    shot(page, "map-clusters")
    # Zoomed in far enough, the live charger is a marker coloured by its live status: available.
    page.get_by_role("button", name=f"Show {platform.live_charger} on the map").click()
    marker = page.locator(f".station-marker[title^='{platform.live_charger}:']")
    expect(marker).to_have_class(re.compile(r"\bavailable\b"))
    expect(page.locator(".leaflet-popup-content")).to_contain_text(platform.live_charger)
    shot(page, "map")

    # The filters are the API's: the page lists exactly what /api/v1/stations/nearby answers.
    before = int(page.locator("body").get_attribute("data-searched") or "0")
    page.get_by_label("Latitude").fill("52.52")
    page.get_by_label("Longitude").fill("13.405")
    page.get_by_label("Min power (kW)").fill("20")
    page.get_by_label("Available now").check()
    page.get_by_label("Radius (km)").fill("30")
    page.get_by_role("button", name="Search", exact=True).click()
    until(page, f"Number(document.body.dataset.searched) > {before}")
    page.wait_for_timeout(600)  # a moveend search may follow the recentring; let it land
    shown = page.locator("#results > li").evaluate_all("els => els.map(e => e.dataset.charger)")
    api = httpx.get(
        f"{platform.url}/api/v1/stations/nearby",
        params={
            "lat": page.get_by_label("Latitude").input_value(),
            "lon": page.get_by_label("Longitude").input_value(),
            "k": 100,
            "min_power_kw": 20,
            "available": "true",
            "radius_km": 30,
        },
    ).json()
    assert shown == [i["charger_id"] for i in api["items"]]
    assert all(i["max_power_w"] >= 20_000 and i["availability"] == "available" for i in api["items"])
    assert page.locator(".leaflet-overlay-pane path.leaflet-interactive, .leaflet-overlay-pane canvas").count() >= 1
    watch.check()
    ctx.close()


# ---------------------------------------------------------------- the driver


def test_driver_finds_tops_up_charges_stops_and_verifies_the_receipt_on_chain(
    browser: Browser, platform: Platform
) -> None:
    e, vehicle_id = platform.electra, platform.driver_vehicle_id
    wallet = TestWallet(platform.driver, e)
    ctx = open_context(browser, platform, wallet, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    watch = Watch(page, platform.url)
    ready(page, "/")
    page.get_by_role("link", name=f"Charge at {platform.live_charger}").first.click()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    assert page.url.endswith(f"/driver?charger={platform.live_charger}")
    expect(page.get_by_label("Charger")).to_have_value(platform.live_charger)

    connect(page)
    expect(page.locator(f"#balance-{vehicle_id}-EUSD")).to_have_text("0 EUSD")

    page.get_by_label("Amount").fill("25.00")
    page.get_by_role("button", name="Top up").click()
    expect(page.locator("#topup-message")).to_contain_text("Credited 25 EUSD")
    expect(page.locator(f"#balance-{vehicle_id}-EUSD")).to_have_text("25 EUSD")
    assert e.payments.balance(vehicle_id, e.stablecoin.address) == 25 * 10**6
    assert "Top up vehicle" in wallet.signed_messages[-1] and "Nonce: " in wallet.signed_messages[-1]

    page.get_by_label("Authorize at most").fill("20")
    page.get_by_role("button", name="Start charging").click()
    live = page.locator("#live")
    expect(live).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-live-status", "active")
    until(page, "parseFloat(document.querySelector('#live-energy')?.textContent || '0') > 0")
    assert wallet.methods().count("eth_signTypedData_v4") == 1
    shot(page, "driver-charging")

    page.get_by_role("button", name="Stop charging").click()
    expect(page.locator("body")).to_have_attribute("data-live-status", "completed", timeout=60_000)
    assert "Stop charging session" in wallet.signed_messages[-1]
    session_id = int(re.search(r"Stop charging session (\d+)", wallet.signed_messages[-1]).group(1))  # type: ignore[union-attr]

    row = page.locator(f"#session-{session_id}")
    expect(row).to_contain_text("settled", timeout=60_000)
    expect(row).to_contain_text("anchored", timeout=60_000)
    page.get_by_role("button", name=f"Receipt {session_id}").click()
    expect(page.locator("#receipt-detail")).to_contain_text("Charged")
    charged = page.locator("#receipt-detail dl").inner_text()
    assert platform.live_charger in charged and "EUSD" in charged

    page.get_by_role("button", name=f"Verify {session_id} on chain").click()
    checks = page.locator("#verify-checks > li")
    expect(checks.first).to_be_visible()
    names = checks.evaluate_all("els => els.map(e => e.dataset.check)")
    assert names == ["leaf", "proof", "chain", "anchor", "contract", "transaction", "meter data", "energy"]
    assert checks.locator(".status.pass").count() == len(names)
    expect(page.locator("#verify-title")).to_contain_text("verified")

    # What the page showed is what the chain holds: the bill came out of the vehicle's deposit.
    assert httpx.get(f"{platform.url}/api/v1/web/sessions/{session_id}").status_code == 401  # not without sign-in
    token = page.evaluate("() => sessionStorage.getItem('electra.siwe')")
    bill = httpx.get(f"{platform.url}/api/v1/web/sessions/{session_id}", headers={"Authorization": f"Bearer {token}"})
    bill = bill.json()["receipt"]
    assert e.payments.balance(vehicle_id, e.stablecoin.address) == 25 * 10**6 - int(bill["amount"])
    assert int(bill["amount"]) > 0
    page.get_by_role("heading", name="Wallet history").scroll_into_view_if_needed()
    expect(page.locator("#history")).to_contain_text("topup")
    shot(page, "driver-receipt")
    watch.check()
    ctx.close()


# ---------------------------------------------------------------- the host


def test_host_registers_a_charger_sets_tariff_and_lease_and_sees_earnings(browser: Browser, platform: Platform) -> None:
    e = platform.electra
    wallet = TestWallet(platform.host, e)
    ctx = open_context(browser, platform, wallet, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    watch = Watch(page, platform.url)
    ready(page, "/host")
    connect(page)
    expect(page.locator("#signin-state")).to_have_text("signed in")  # connecting signs in with the API
    expect(page.locator("body")).to_have_attribute("data-host-loaded", re.compile(r"^[1-9]\d*$"))
    for charger in platform.fleet_chargers:
        expect(page.locator(f"#charger-{charger}")).to_be_visible()
    sessions = int(page.locator("body").get_attribute("data-earnings-sessions") or "0")
    assert sessions >= platform.history_sessions
    expect(page.locator("#earnings-summary")).to_contain_text("settled sessions")
    expect(page.locator("#earnings-unwithdrawn")).to_contain_text("EUSD not yet withdrawn")

    new_id = "CP-WEB-NEW-1"
    page.get_by_label("Charger id").fill(new_id)
    page.get_by_label("Power (kW)").fill("50")
    page.get_by_label("Latitude").fill("52.5001")
    page.get_by_label("Longitude").fill("13.4201")
    page.get_by_label("ccs2").check()
    page.get_by_role("button", name="Register with my wallet").click()
    expect(page.locator("#register-message")).to_contain_text(f"Registered {new_id}", timeout=60_000)
    expect(page.locator("#register-tx pre.tx")).to_contain_text(e.stations.address)
    token_id = e.stations.token_id_of(new_id)
    assert token_id > 0 and e.stations.station(token_id).owner == platform.host.address
    assert wallet.methods().count("eth_sendTransaction") == 1
    expect(page.locator(f"#charger-{new_id}")).to_be_visible()

    page.get_by_role("button", name=f"Manage {new_id}").click()
    expect(page.locator("#manage-title")).to_have_text(f"Charger {new_id}")
    expect(page.locator("#t-kwh-max")).to_contain_text("at most 2")
    page.get_by_label("Per kWh").fill("0.45")
    page.get_by_label("Per session").fill("0.50")
    page.get_by_role("button", name="Save tariff").click()
    expect(page.locator("#tariff-message")).to_contain_text(f"Tariff of {new_id} saved: 0.45 EUSD per kWh")
    t = TariffBook(platform.engine).get(new_id)
    assert (t.asset, t.energy_price_per_wh, t.session_fee) == ("EUSD", 450, 500_000)
    assert f"Set the tariff of {new_id}" in wallet.signed_messages[-1]

    page.get_by_label("Public hours").fill("Mon-Fri 07:00-19:00\nSat 09:00-13:00")
    page.get_by_role("button", name="Save lease").click()
    expect(page.locator("#lease-message")).to_contain_text(f"Lease of {new_id} saved: public, Mon-Fri 07:00-19:00")
    lease = LeaseBook(platform.engine).get(new_id)
    assert lease.public and [w.text() for w in lease.windows] == ["Mon-Fri 07:00-19:00", "Sat 09:00-13:00"]
    expect(page.locator(f"#charger-{new_id}")).to_contain_text("0.45 EUSD/kWh")
    expect(page.locator("#no-tickets")).to_be_visible()

    busiest = busiest_charger(platform)
    page.get_by_role("button", name=f"Manage {busiest}").click()
    expect(page.locator("#manage-title")).to_have_text(f"Charger {busiest}")
    expect(page.locator("#heatmap-table caption")).to_contain_text(busiest)
    cells = page.locator("#heatmap-table tbody td").all_inner_texts()
    assert len(cells) == 7 * 24
    token = page.evaluate("() => sessionStorage.getItem('electra.siwe')")
    u = httpx.get(
        f"{platform.url}/api/v1/web/chargers/{busiest}/utilization", headers={"Authorization": f"Bearer {token}"}
    ).json()
    shown = [int(c) for c in cells if c.strip()]
    assert shown, "the history's sessions make some hours busy"
    # The page rounds permille to percent half up (JavaScript's Math.round), not half to even.
    assert sorted(shown) == sorted((p + 5) // 10 for row in u["permille"] for p in row if p)
    expect(page.locator("#stake-info")).to_contain_text("Staking tiers")
    page.get_by_label("Amount (ELC)").fill("1000")
    page.get_by_label("Action", exact=True).select_option("stake")
    page.get_by_role("button", name="Send with wallet").click()
    expect(page.locator("#stake-message")).to_contain_text("Staking updated on-chain", timeout=60_000)
    staked = e.stations.token_id_of(busiest)
    assert e.staking.position(staked, platform.host.address).bonded == 1_000 * 10**18
    assert e.staking.tier_of(staked).tier == 1
    assert wallet.methods().count("eth_sendTransaction") == 3  # the registration, an approval, the stake
    expect(page.locator(f"#charger-{busiest}")).to_contain_text("tier 1 (1000 ELC)")
    shot(page, "host")

    # A host with many chargers pages through them, newest first (?per_page= sets the page size).
    held = e.stations.token_ids_held_by(platform.host.address)[::-1]
    newest = [e.stations.station(t).charger_id for t in held[:4]]
    ready(page, "/host?per_page=2")
    expect(page.locator("#signin-state")).to_have_text("signed in")  # the tab's sign-in is restored
    caption = page.locator("#chargers caption")
    expect(caption).to_have_text(f"{len(held)} chargers held by {platform.host.address}; 1-2 shown, newest first")
    assert page.locator("#chargers tbody tr th").all_inner_texts() == newest[:2]
    expect(page.locator("#chargers-prev")).to_be_disabled()
    page.get_by_role("button", name="Older chargers").click()
    expect(caption).to_contain_text("; 3-4 shown")
    assert page.locator("#chargers tbody tr th").all_inner_texts() == newest[2:4]
    expect(page.locator("#chargers-prev")).to_be_enabled()
    assert axe_violations(page) == []
    watch.check()
    ctx.close()


# ---------------------------------------------------------------- the DAO


def test_dao_member_proposes_a_parameter_change_and_votes(browser: Browser, platform: Platform) -> None:
    e = platform.electra
    voter = dev_account(0)  # the genesis holder, who delegated its ELC to itself at deployment
    wallet = TestWallet(voter, e)
    ctx = open_context(browser, platform, wallet, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    watch = Watch(page, platform.url)
    ready(page, "/dao")
    connect(page)
    expect(page.locator("#my-votes")).not_to_have_text("0 ELC")
    expect(page.locator("#params")).to_contain_text("protocol-fee-bps")

    description = "Lower the protocol fee to 0.5 %"
    page.get_by_label("Parameter", exact=True).select_option("protocol-fee-bps")
    page.get_by_label("New value").fill("50")
    page.get_by_label("Description").fill(description)
    page.get_by_role("button", name="Prepare proposal").click()
    expect(page.locator("#propose-message")).to_contain_text("Proposed", timeout=60_000)
    shown = page.locator("#propose-tx pre.tx").inner_text()
    assert json.loads(shown)["to"] == e.governor().address
    proposal = page.locator("article[data-proposal]", has_text=description)
    expect(proposal).to_contain_text("pending")
    expect(proposal).to_contain_text("PaymentHub.setProtocolFee")
    proposal_id = int(proposal.get_attribute("data-proposal") or "0")

    e.client.rpc("evm_increaseTime", 61)  # past the voting delay
    e.client.rpc("evm_mine")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    proposal = page.locator(f"article[data-proposal='{proposal_id}']")
    expect(proposal).to_contain_text("active")
    proposal.get_by_role("button", name=re.compile(r"^Vote for ")).click()
    expect(page.locator("#vote-message")).to_contain_text("Voted for", timeout=60_000)
    expect(page.locator("#vote-tx pre.tx")).to_contain_text(e.governor().address)
    g = e.governor().functions
    assert e.client.call(g.hasVoted(proposal_id, voter.address)) is True
    against, for_, abstain = e.client.call(g.proposalVotes(proposal_id))
    assert for_ == e.token.votes(voter.address) and against == 0 and abstain == 0
    expect(page.locator(f"article[data-proposal='{proposal_id}']")).to_contain_text("voted")
    shot(page, "dao")
    watch.check()
    ctx.close()


# ---------------------------------------------------------------- accessibility and phones


def test_every_page_passes_axe_works_by_keyboard_and_fits_a_phone(browser: Browser, platform: Platform) -> None:
    ctx = open_context(
        browser,
        platform,
        TestWallet(platform.host, platform.electra),
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    page = ctx.new_page()
    watch = Watch(page, platform.url)
    for path in PAGES:
        ready(page, path)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        assert page.locator("header.site, nav.site, main, footer.site").count() == 4
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"{path} scrolls sideways on a phone: {width}"
        violations = axe_violations(page)
        assert violations == [], f"{path}: {violations}"
        name = "map" if path == "/" else path.strip("/")
        shot(page, f"phone-{name}")
    # Signed in, the host page shows its tables and forms; they must pass too.
    ready(page, "/host")
    connect(page)
    expect(page.locator("#signin-state")).to_have_text("signed in")  # connecting signs in with the API
    expect(page.locator("body")).to_have_attribute("data-host-loaded", re.compile(r"^[1-9]\d*$"))
    page.get_by_role("button", name=f"Manage {busiest_charger(platform)}").click()
    expect(page.locator("#heatmap-table caption")).to_contain_text(busiest_charger(platform))
    assert axe_violations(page) == []
    shot(page, "phone-host-signed-in")
    watch.check()
    ctx.close()


# ---------------------------------------------------------------- sign-in with Ethereum


def test_sign_in_with_ethereum_against_the_api(browser: Browser, platform: Platform) -> None:
    """Connecting the wallet signs in with the API (EIP-4361): the page asks for a nonce and the
    message, the wallet signs it, and the bearer token then goes with the page's requests."""
    wallet = TestWallet(platform.driver, platform.electra)
    ctx = open_context(browser, platform, wallet, viewport={"width": 1280, "height": 900})
    signed: list[str] = []
    page = ctx.new_page()
    watch = Watch(page, platform.url)
    authorized: list[str] = []
    page.on("request", lambda r: authorized.append(r.headers.get("authorization", "")) if "/api/v1/" in r.url else None)
    page.on("request", lambda r: signed.append(r.post_data or "") if r.url.endswith("/api/v1/auth/siwe") else None)
    ready(page, "/driver")
    connect(page)
    expect(page.locator("#signin-state")).to_have_text("signed in")
    message = json.loads(signed[-1])["message"]
    lines = message.split("\n")
    assert lines[0].endswith(" wants you to sign in with your Ethereum account:")
    assert lines[1] == platform.driver.address  # EIP-55
    assert f"Chain ID: {platform.electra.client.chain_id}" in lines and "Version: 1" in lines
    me = page.evaluate(
        """async () => {
            const token = sessionStorage.getItem("electra.siwe");  // common.js SESSION_KEY
            const r = await fetch("/api/v1/auth/me", { headers: { Authorization: `Bearer ${token}` } });
            return { status: r.status, body: await r.json() };
        }"""
    )
    assert me["status"] == 200 and me["body"]["address"] == platform.driver.address
    page.wait_for_load_state("networkidle")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    # The token outlives a reload: still signed in, the driver's own vehicles load with it.
    expect(page.locator("#signin-state")).to_have_text("signed in")
    expect(page.locator(f"#balance-{platform.driver_vehicle_id}-EUSD")).to_be_visible()
    assert any(h.startswith("Bearer ") for h in authorized)
    watch.check()

    # The token ended (here: logged out elsewhere): the next private read is a 401, the page drops
    # the token and offers to sign in again, which brings the vehicles back.
    ended = page.evaluate(
        """async () => {
            const token = sessionStorage.getItem("electra.siwe");
            const headers = { Authorization: `Bearer ${token}` };
            const r = await fetch("/api/v1/auth/logout", { method: "POST", headers });
            return r.status;
        }"""
    )
    assert ended == 204
    page.reload()
    expect(page.locator("#signin-state")).to_have_text("connected")
    expect(page.locator("#signed-out-note")).to_contain_text("Sign in with your wallet to see your vehicles")
    assert page.evaluate("() => sessionStorage.getItem('electra.siwe')") is None
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-state")).to_have_text("signed in")
    expect(page.locator(f"#balance-{platform.driver_vehicle_id}-EUSD")).to_be_visible()
    # The dead token's one refusal (then the same request without it), and nothing else.
    assert any(p.startswith("HTTP 401: ") for p in watch.problems), watch.problems
    expected = ("HTTP 401: ", "console error: Failed to load resource")
    left = [p for p in watch.problems if not p.startswith(expected) and not p.endswith("net::ERR_ABORTED")]
    assert left == [], left  # a request the reload cut short is not a problem
    ctx.close()


# ---------------------------------------------------------------- who may change what


def test_a_change_needs_the_holders_signature_once(platform: Platform) -> None:
    """The routes behind the pages, without a browser: only the charger's holder may set its
    tariff, only with their own signature, and a signed action works once."""
    charger = platform.fleet_chargers[1]
    tariff = {"charger_id": charger, "asset": "EUSD", "per_kwh": "0.41"}
    url = f"{platform.url}/api/v1/web/actions"
    refused = httpx.post(url, json={"kind": "tariff", "account": platform.driver.address, "params": tariff})
    assert refused.status_code == 403 and refused.json()["code"] == "action-refused"
    too_high = httpx.post(
        url, json={"kind": "tariff", "account": platform.host.address, "params": {**tariff, "per_kwh": "2.5"}}
    )
    assert too_high.status_code == 400 and "above the DAO's bound" in too_high.json()["title"]
    action = httpx.post(url, json={"kind": "tariff", "account": platform.host.address, "params": tariff}).json()
    assert action["statement"].startswith(f"Set the tariff of {charger}: 0.41 EUSD per kWh")

    def signed(who: Any) -> str:
        return "0x" + who.sign_message(encode_defunct(text=action["message"])).signature.hex()

    wrong = httpx.post(f"{url}/{action['nonce']}", json={"signature": signed(platform.driver)})
    assert wrong.status_code == 403
    assert TariffBook(platform.engine).get(charger).energy_price_per_wh != 410
    done = httpx.post(f"{url}/{action['nonce']}", json={"signature": signed(platform.host)})
    assert done.status_code == 200 and done.json()["result"]["tariff"]["per_kwh"] == "0.41"
    assert TariffBook(platform.engine).get(charger).energy_price_per_wh == 410
    again = httpx.post(f"{url}/{action['nonce']}", json={"signature": signed(platform.host)})
    assert again.status_code == 410 and again.json()["code"] == "action-unknown"
    stop = httpx.post(url, json={"kind": "stop", "account": platform.host.address, "params": {"session_id": 10**9}})
    assert stop.status_code == 404
