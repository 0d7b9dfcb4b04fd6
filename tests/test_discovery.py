"""Discovery: the ranking's monotonicity (hypothesis), the geo index against a brute-force scan,
updates (new, moved, removed, status), bad input, and the index kept in step with a real
StationRegistry on anvil and the central system's store, served over HTTP."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.config import Settings
from electra.discovery.index import REBUILD_AT, Filters, Listing, StationIndex
from electra.discovery.indexer import StationIndexer
from electra.domain.ranking import Availability, Candidate, rank
from electra.domain.station import StationSpec
from electra.domain.tariff import Tariff
from electra.errors import InvalidInput
from electra.payments.tariffs import TariffBook
from electra.store.db import make_engine, migrate
from electra.store.models import ConnectorState
from tests.conftest import free_port

R = 6_371_008.8


def haversine_m(a: tuple[int, int], b: tuple[int, int]) -> float:
    la1, lo1, la2, lo2 = (math.radians(v / 1e6) for v in (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * R * math.asin(min(1.0, math.sqrt(h)))


candidates = st.builds(
    Candidate,
    token_id=st.integers(1, 10**6),
    distance_m=st.integers(0, 500_000),
    price_per_wh=st.integers(0, 2_000),
    availability=st.sampled_from(list(Availability)),
    reliability_permille=st.integers(0, 1000),
    boost_points=st.integers(0, 1000),
)


@given(c=candidates, others=st.lists(candidates, max_size=8), farther=st.integers(1, 100_000))
def test_a_closer_charger_ranks_higher_all_else_equal(c: Candidate, others: list[Candidate], farther: int) -> None:
    near = c
    far = Candidate(
        c.token_id + 10**7,
        c.distance_m + farther,
        c.price_per_wh,
        c.availability,
        c.reliability_permille,
        c.boost_points,
    )
    ranked = rank([far, *others, near])
    order = [r.candidate.token_id for r in ranked]
    assert order.index(near.token_id) < order.index(far.token_id)
    assert [r.rank for r in ranked] == list(range(1, len(ranked) + 1))
    assert all(ranked[i].score >= ranked[i + 1].score for i in range(len(ranked) - 1))


@given(c=candidates, part=st.sampled_from(["price", "availability", "reliability", "boost"]))
def test_every_part_is_monotone(c: Candidate, part: str) -> None:
    worse = {
        "price": {"price_per_wh": c.price_per_wh + 100},
        "availability": {"availability": Availability(max(0, int(c.availability) - 1))},
        "reliability": {"reliability_permille": max(0, c.reliability_permille - 100)},
        "boost": {"boost_points": max(0, c.boost_points - 100)},
    }[part]
    other = Candidate(**{**c.__dict__, "token_id": c.token_id + 10**7, **worse})
    scores = {r.candidate.token_id: r.score for r in rank([c, other])}
    assert scores[c.token_id] >= scores[other.token_id]


stations = st.lists(
    st.tuples(
        st.integers(-60_000_000, 70_000_000),
        st.integers(-180_000_000, 180_000_000),
        st.sampled_from([3_700, 11_000, 22_000, 50_000, 150_000]),
        st.integers(1, 15),
        st.booleans(),
        st.sampled_from(list(Availability)),
    ),
    min_size=1,
    max_size=300,
)
filters = st.builds(
    Filters,
    connector_mask=st.sampled_from([0, 1, 2, 8]),
    min_power_w=st.sampled_from([0, 22_000, 50_000]),
    available_now=st.booleans(),
    public_only=st.booleans(),
    radius_m=st.sampled_from([None, 50_000, 2_000_000]),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=stations,
    f=filters,
    q=st.tuples(st.integers(-60_000_000, 70_000_000), st.integers(-180_000_000, 180_000_000)),
    k=st.integers(1, 12),
    pending=st.integers(0, 40),
)
def test_the_index_finds_what_a_brute_force_scan_finds(
    rows: list[tuple[int, int, int, int, bool, Availability]], f: Filters, q: tuple[int, int], k: int, pending: int
) -> None:
    """With equal price, availability, reliability and boost the ranking is by distance, so the
    index must return exactly the k nearest matching chargers; some of them still pending."""
    listings = [
        Listing(i + 1, f"CP-{i}", la, lo, p, c, price_per_wh=400, public=pub, availability=av)
        for i, (la, lo, p, c, pub, av) in enumerate(rows)
    ]
    split = max(0, len(listings) - pending)
    index = StationIndex(listings[:split])
    for x in listings[split:]:
        index.upsert(x)
    avail = Filters(**{**f.__dict__, "available_now": False})  # availability would change the score
    uniform = [Listing(**{**x.__dict__, "availability": Availability.AVAILABLE}) for x in listings]
    for x in uniform:
        index.upsert(x)
    got = index.nearby(*q, k=k, filters=avail)

    def ok(x: Listing) -> bool:
        d = haversine_m(q, (x.latitude_e6, x.longitude_e6))
        return (
            (not avail.connector_mask or x.connector_types & avail.connector_mask != 0)
            and x.max_power_w >= avail.min_power_w
            and (not avail.public_only or x.public)
            and (avail.radius_m is None or d <= avail.radius_m)
        )

    expected = sorted((haversine_m(q, (x.latitude_e6, x.longitude_e6)), x.token_id) for x in uniform if ok(x))
    assert [g.listing.token_id for g in got] == [t for _, t in expected[:k]] or _ties(got, expected, k)
    for g in got:
        assert abs(g.ranked.candidate.distance_m - haversine_m(q, (g.listing.latitude_e6, g.listing.longitude_e6))) < 2


def _ties(got: list, expected: list[tuple[float, int]], k: int) -> bool:
    """Distances equal to a metre may order either way (the score is in whole points)."""
    return [round(g.ranked.candidate.distance_m) for g in got] == [int(d) for d, _ in expected[:k]]


def test_updates_new_moved_removed_and_status_changes() -> None:
    base = [Listing(i, f"CP-{i}", 52_000_000 + i * 10_000, 13_000_000, 22_000, 2) for i in range(1, 101)]
    index = StationIndex(base)
    here = (52_000_000, 13_000_000)
    assert index.nearby(*here, k=1)[0].listing.token_id == 1
    index.upsert(Listing(1000, "CP-NEW", 52_000_000, 13_000_100, 22_000, 2))  # pending, not yet in the tree
    assert index.nearby(*here, k=1)[0].listing.token_id == 1000
    index.upsert(Listing(1000, "CP-NEW", 10_000_000, 10_000_000, 22_000, 2))  # moved far away
    assert index.nearby(*here, k=1)[0].listing.token_id == 1
    index.update(1, active=False)  # deactivated
    assert index.nearby(*here, k=1)[0].listing.token_id == 2
    index.update(2, availability=Availability.OCCUPIED)
    index.update(3, availability=Availability.AVAILABLE)
    assert index.nearby(*here, k=1, filters=Filters(available_now=True))[0].listing.token_id == 3
    index.remove(3)
    assert 3 not in [f.listing.token_id for f in index.nearby(*here, k=100)]
    assert len(index) == 100
    for i in range(REBUILD_AT):  # enough new chargers to rebuild the tree
        index.upsert(Listing(10_000 + i, f"CP-R{i}", -33_000_000, 151_000_000 + i, 7_400, 1))
    assert len(index) == 100 + REBUILD_AT
    assert index._tree_rows > REBUILD_AT and len(index) - index._tree_rows < REBUILD_AT  # rebuilt once
    assert index.nearby(-33_000_000, 151_000_000, k=1)[0].listing.token_id == 10_000
    assert index.nearby(*here, k=5, filters=Filters(radius_m=100)) == []  # 1 is off, 2 is 2.2 km away, 3 is gone
    assert [f.listing.token_id for f in index.nearby(*here, k=5, filters=Filters(radius_m=3_000))] == [2]


def test_results_say_why_and_bad_input_is_refused() -> None:
    index = StationIndex([Listing(1, "CP-1", 52_000_000, 13_000_000, 22_000, 2, price_per_wh=390)])
    (found,) = index.nearby(52_001_000, 13_000_000, k=3)
    j = found.to_json()
    assert j["rank"] == 1 and 100 < int(j["distance_m"]) < 120  # type: ignore[call-overload]
    assert set(j["points"]) == {"distance", "price", "availability", "reliability", "staking"}  # type: ignore[arg-type]
    assert "distance" in str(j["why"])
    with pytest.raises(InvalidInput):
        index.nearby(91_000_000, 0)
    with pytest.raises(InvalidInput):
        index.nearby(0, 0, k=0)
    with pytest.raises(InvalidInput):
        index.nearby(0, 0, filters=Filters(radius_m=-1))
    with pytest.raises(InvalidInput):
        StationIndex([Listing(1, "X", 0, 181_000_000, 1, 1)])
    assert StationIndex().nearby(0, 0) == []


def test_the_index_follows_the_registry_and_the_store(electra: Electra, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/electra.db")
    migrate(engine)
    host = dev_account(1)
    start = int(electra.client.w3.eth.block_number) + 1
    ids = {}
    for i, (lat, lon) in enumerate([(48_137_000, 11_575_000), (48_140_000, 11_580_000), (48_200_000, 11_600_000)]):
        spec = StationSpec(f"CP-FIND-{i}", lat, lon, 22_000 * (i + 1), 2, 3, b"DEELC")
        ids[i], _ = electra.stations.register(spec, Account.create(), owner=host)
    indexer = StationIndexer(electra.stations, engine, from_block=start)
    assert indexer.sync() == 3
    here = (48_137_000, 11_575_000)
    assert indexer.index.nearby(*here, k=3)[0].listing.charger_id == "CP-FIND-0"
    # The host deactivates the nearest; it goes at the next sync.
    electra.stations.deactivate(ids[0], owner=host)
    assert indexer.sync() == 1
    assert "CP-FIND-0" not in [f.listing.charger_id for f in indexer.index.nearby(*here, k=3)]
    # Transfer: the new holder shows.
    new_owner = dev_account(2)
    electra.client.transact(
        electra.stations.contract.functions.transferFrom(host.address, new_owner.address, ids[1]), sender=host
    )
    indexer.sync()
    index = indexer.index
    listing = index.get(ids[1])
    assert listing is not None and listing.owner == new_owner.address
    # Live status and tariff from the store.
    with engine.begin() as conn:
        conn.execute(
            ConnectorState.__table__.insert(),
            [
                {"charger_id": "CP-FIND-1", "connector_id": 1, "status": "Charging", "updated_at_ms": 1},
                {"charger_id": "CP-FIND-2", "connector_id": 1, "status": "Available", "updated_at_ms": 1},
            ],
        )
    TariffBook(engine).set("CP-FIND-2", Tariff("EUSD", 300), by="test")
    indexer.refresh_live()
    (only,) = index.nearby(*here, k=3, filters=Filters(available_now=True))
    assert only.listing.charger_id == "CP-FIND-2" and only.listing.price_per_wh == 300
    assert index.get(ids[1]).availability is Availability.OCCUPIED  # type: ignore[union-attr]
    _over_http(index)


def _over_http(index: StationIndex) -> None:
    import uvicorn

    from electra.api.app import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(None, lambda: None, stations=lambda: index), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port}/api/v1/stations/nearby"
        r = httpx.get(url, params={"lat": 48.137, "lon": 11.575, "k": 2, "connector": "type2"}, timeout=10)
        assert r.status_code == 200
        body = r.json()
        assert body["count"] == 2 and body["items"][0]["rank"] == 1 and "why" in body["items"][0]
        r = httpx.get(url, params={"lat": 48.137, "lon": 11.575, "min_power_kw": 60}, timeout=10)
        assert [x["charger_id"] for x in r.json()["items"]] == ["CP-FIND-2"]
        r = httpx.get(url, params={"lat": 95, "lon": 11.575}, timeout=10)
        assert r.status_code == 422
        r = httpx.get(url, params={"lat": 48, "lon": 11, "connector": "warp-drive"}, timeout=10)
        assert r.status_code == 400 and r.json()["code"] == "bad-query"
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_cli_finds_chargers_and_round_trips_ocpi(
    electra: Electra, chain_settings: Settings, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from electra.cli.main import app

    host = dev_account(1)
    for i, (lat, lon) in enumerate([(40_416_775, -3_703_790), (40_420_000, -3_700_000)]):
        spec = StationSpec(f"CP-MAD-{i}", lat, lon, 50_000 * (i + 1), 0b1010, 3, b"ESELC")
        electra.stations.register(spec, Account.create(), owner=host)
    env = {
        "ELECTRA_DB_URL": f"sqlite:///{tmp_path}/cli.db",
        "ELECTRA_DATA_DIR": str(chain_settings.data_dir),
        "ELECTRA_DEV_CHAIN_PORT": str(chain_settings.dev_chain_port),
    }
    run = CliRunner()
    r = run.invoke(app, ["find", "--near", "40.416775,-3.703790", "-k", "5", "--min-power-kw", "60", "--json"], env=env)
    assert r.exit_code == 0, r.output
    found = json.loads(r.output)["items"]
    assert [f["charger_id"] for f in found] == ["CP-MAD-1"] and found[0]["why"].startswith("#1 with")
    r = run.invoke(app, ["find", "--near", "40.4,-3.7", "--connector", "ccs2", "--json"], env=env)
    assert {f["charger_id"] for f in json.loads(r.output)["items"]} >= {"CP-MAD-0", "CP-MAD-1"}
    r = run.invoke(app, ["find", "--near", "north pole"], env=env)
    assert r.exit_code == 1 and "is not LAT,LON" in r.output
    out = tmp_path / "locations.json"
    r = run.invoke(app, ["ocpi", "export", "--out", str(out)], env=env)
    assert r.exit_code == 0, r.output
    mine = [loc for loc in json.loads(out.read_text())["data"] if loc["id"].startswith("CP-MAD-")]
    assert [(loc["country_code"], loc["party_id"]) for loc in mine] == [("ES", "ELC")] * 2
    r = run.invoke(app, ["ocpi", "import", str(out), "--json"], env=env)
    assert r.exit_code == 0, r.output
    back = {x["id"]: x for x in json.loads(r.output)["locations"]}
    assert back["CP-MAD-0"]["latitude_e6"] == 40_416_775 and back["CP-MAD-1"]["max_power_w"] == 100_000
    from sqlalchemy import select

    from electra.store.models import OcpiLocationRecord

    engine = make_engine(env["ELECTRA_DB_URL"])
    with engine.connect() as conn:
        stored = {row.location_id: row for row in conn.execute(select(OcpiLocationRecord.__table__))}
    engine.dispose()
    assert stored["CP-MAD-1"].party_id == "ELC" and stored["CP-MAD-1"].max_power_w == 100_000
    assert electra.stations.token_id_of("CP-MAD-9") == 0  # importing minted nothing
    r = run.invoke(app, ["ocpi", "import", str(out)], env=env)  # again: upserted, not duplicated
    assert r.exit_code == 0 and "none minted" in r.output
    # Another operator's location, imported, then minted by the operator's choice.
    other = json.loads(out.read_text())
    theirs = next(loc for loc in other["data"] if loc["id"] == "CP-MAD-0")
    theirs = {**theirs, "id": "FR-EXT-0042", "country_code": "FR", "party_id": "EXT"}
    (tmp_path / "theirs.json").write_text(json.dumps([theirs]))
    r = run.invoke(app, ["ocpi", "import", str(tmp_path / "theirs.json")], env=env)
    assert r.exit_code == 0 and electra.stations.token_id_of("FR-EXT-0042") == 0
    r = run.invoke(app, ["ocpi", "mint", "FR-EXT-0042", "--account", "1", "--json"], env=env)
    assert r.exit_code == 0, r.output
    minted = electra.stations.station(json.loads(r.output)["token_id"])
    assert (minted.charger_id, minted.latitude_e6, minted.operator_id) == ("FR-EXT-0042", 40_416_775, "FR*EXT")
    r = run.invoke(app, ["ocpi", "mint", "FR-EXT-0042", "--account", "1"], env=env)
    assert r.exit_code == 1 and "already a charger NFT" in r.output


def test_a_staked_charger_ranks_higher_and_loses_it_when_unstaked(electra: Electra, tmp_path: Path) -> None:
    """Host staking buys visibility: two chargers alike but for the host's stake."""
    engine = make_engine(f"sqlite:///{tmp_path}/stake.db")
    migrate(engine)
    host = dev_account(6)
    ids = []
    for i in range(2):
        spec = StationSpec(f"CP-BOOST-{i}", 45_000_000, 9_000_000, 22_000, 2, 3, b"FRELC")
        ids.append(electra.stations.register(spec, Account.create(), owner=host)[0])
    indexer = StationIndexer.for_electra(electra, engine)
    indexer.sync()
    here = (45_000_000, 9_000_000)  # both on the same spot: a tie goes to the lower token id
    assert [f.listing.token_id for f in indexer.index.nearby(*here, k=2)] == ids
    top = electra.staking.tiers()[-1]
    electra.token.transfer(host.address, top.min_stake)
    electra.staking.stake(ids[1], top.min_stake, sender=host)
    indexer.sync()
    first, second = indexer.index.nearby(*here, k=2)
    assert first.listing.token_id == ids[1] and first.ranked.points["staking"] == 1_000
    assert first.ranked.score > second.ranked.score
    electra.staking.request_unstake(ids[1], top.min_stake, sender=host)
    indexer.sync()
    assert [f.listing.token_id for f in indexer.index.nearby(*here, k=2)] == ids  # unbonding stake counts no more
