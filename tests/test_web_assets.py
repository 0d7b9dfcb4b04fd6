"""The web app's vendored browser assets match what npm installed from package-lock.json, every
asset a page names exists, and nothing the pages load comes from another origin."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx

from electra.api.app import create_app
from electra.api.web import CSP
from electra.web import PAGES, STATIC_DIR

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = json.loads((ROOT / "src" / "electra" / "web" / "vendor.json").read_text())
LOCK = json.loads((ROOT / "package-lock.json").read_text())
OWN = [p for p in STATIC_DIR.rglob("*") if p.is_file() and "vendor" not in p.relative_to(STATIC_DIR).parts]


def test_vendored_files_are_the_installed_packages_files() -> None:
    assert len(MANIFEST["files"]) >= 10
    for f in MANIFEST["files"]:
        copy = STATIC_DIR / "vendor" / f["to"]
        installed = ROOT / "node_modules" / f["package"] / f["from"]
        assert copy.read_bytes() == installed.read_bytes(), f"{copy} differs from {installed}: run make npm-deps"


def test_vendored_versions_are_the_locked_versions() -> None:
    versions = json.loads((STATIC_DIR / "vendor" / "VERSIONS.json").read_text())
    packages = {f["package"] for f in MANIFEST["files"]}
    assert set(versions) == packages
    for name in packages:
        assert versions[name] == LOCK["packages"][f"node_modules/{name}"]["version"], name
        assert LOCK["packages"][""]["dependencies"][name] == versions[name], f"{name} is pinned in package.json"


def test_every_asset_a_page_names_exists_and_nothing_comes_from_elsewhere() -> None:
    named = set()
    for page in PAGES.values():
        html = (STATIC_DIR / page).read_text()
        refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
        named.update(r for r in refs if r.startswith("/static/"))
        assert all(r.startswith("/") for r in refs), f"{page} refers outside this origin: {refs}"
    for js in STATIC_DIR.glob("js/*.js"):
        named.update(re.findall(r'"(/static/[^"]+)"', js.read_text()))
    assert "/static/vendor/world-atlas/countries-50m.json" in named
    for ref in named:
        assert (STATIC_DIR / ref.removeprefix("/static/")).is_file(), ref
    for path in OWN:
        if path.suffix in (".html", ".js", ".css"):
            assert not re.search(r"https?://", path.read_text()), f"{path} names a URL of another site"


def test_pages_and_assets_are_served_by_the_api_process_with_a_same_origin_policy() -> None:
    async def go() -> None:
        transport = httpx.ASGITransport(app=create_app(None, lambda: None))
        async with httpx.AsyncClient(transport=transport, base_url="http://electra.test") as client:
            await _served(client)

    asyncio.run(go())


async def _served(client: httpx.AsyncClient) -> None:
    for path, name in PAGES.items():
        r = await client.get(path)
        assert r.status_code == 200 and r.headers["content-security-policy"] == CSP
        assert r.text == (STATIC_DIR / name).read_text()
    assert "default-src 'self'" in CSP and "connect-src 'self'" in CSP
    r = await client.get("/static/vendor/leaflet/leaflet.js")
    assert r.status_code == 200 and r.content == (STATIC_DIR / "vendor" / "leaflet" / "leaflet.js").read_bytes()
    assert (await client.get("/static/nothing-here.js")).status_code == 404
    # Without a deployment the JSON routes answer a problem, not a crash.
    r = await client.get("/api/v1/web/config")
    assert r.status_code == 503 and r.json()["code"] == "deployment-missing"
