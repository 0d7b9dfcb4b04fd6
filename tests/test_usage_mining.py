"""Usage-mining epochs (electra.domain.usage_mining): the rules, determinism, the cap, the leaves."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from electra.domain.merkle import verify
from electra.domain.record import SessionRecord
from electra.domain.rewards import checksum, reward_leaf
from electra.domain.usage_mining import AnchoredRecord, RewardParameters, compute_epoch

DAY_MS = 24 * 3_600_000
T0 = 1_795_000_000_000 - 1_795_000_000_000 % DAY_MS  # a midnight, UTC
HOST, OTHER_HOST, DRIVER, HOST_DRIVER = (checksum("0x" + c * 40) for c in "1234")
ELC = 10**18


def params(**kw: int) -> RewardParameters:
    base = {"epoch": 3, "start_ms": T0, "end_ms": T0 + DAY_MS, "first_seq": 1, "last_seq": 1_000, "snapshot_block": 9}
    return RewardParameters(**(base | kw))  # type: ignore[arg-type]


def rec(seq: int, charger: int, vehicle: int, start_h: float, hours: float, wh: int) -> AnchoredRecord:
    start = T0 + int(start_h * 3_600_000)
    stop = start + int(hours * 3_600_000)
    return AnchoredRecord(seq, SessionRecord(seq, charger, vehicle, start, stop, 0, wh, wh, "0x" + "ab" * 20, 0))


HOLDERS = {1: HOST, 2: OTHER_HOST, 3: HOST_DRIVER}
OWNERS = {10: DRIVER, 11: HOST_DRIVER}


def test_the_rules_session_by_session() -> None:
    records = [
        rec(1, 1, 10, 2, 1, 10_000),  # off-peak at an idle charger: both rates
        rec(2, 2, 10, 12, 1, 10_000),  # peak, charger 2 busy (below): nothing... unless idle
        rec(3, 2, 10, 13, 7, 30_000),  # makes charger 2 busy: 8 h of 24 = 333 permille
        rec(4, 3, 11, 2, 1, 10_000),  # self-dealing: the driver holds charger 3
        rec(5, 1, 10, 3, 0.1, 500),  # below the minimum energy
        rec(6, 1, 0, 3, 1, 10_000),  # a driver's token, not a vehicle
        rec(7, 1, 10, 4, 1, 0),  # flagged: not billed
        rec(
            8,
            1,
            10,
            5,
            1,
            10_000,
        ),
    ]
    records.append(AnchoredRecord(1_001, rec(9, 1, 10, 2, 1, 10_000).record))  # not anchored in the range
    r = compute_epoch(params(), records, HOLDERS, OWNERS)
    why = {s.session_id: s.reason for s in r.sessions}
    amount = {s.session_id: s.amount for s in r.sessions}
    assert r.utilization_permille[2] == 333 and r.utilization_permille[1] < 250
    assert amount[1] == 10 * ELC + 5 * ELC and why[1] == "off-peak and idle charger"
    assert amount[2] == amount[3] == 0 and why[2] == "peak hour at a busy charger"
    assert amount[4] == 0 and why[4].startswith("self-dealing")
    assert amount[5] == 0 and "minimum energy" in why[5]
    assert amount[6] == 0 and "driver's token" in why[6]
    assert amount[7] == 0 and "flagged" in why[7]
    assert 9 not in amount
    total = amount[1] + amount[8]
    assert r.amounts == {DRIVER: total * 7 // 10, HOST: total - total * 7 // 10}


def test_the_cap_scales_every_account_down() -> None:
    records = [rec(i, 1 + i % 2, 10, 1, 0.5, 20_000) for i in range(1, 21)]
    free = compute_epoch(params(), records, HOLDERS, OWNERS)
    capped = compute_epoch(params(epoch_cap=free.total // 3), records, HOLDERS, OWNERS)
    assert capped.total <= free.total // 3 and capped.total_before_cap == free.total
    for a, n in capped.amounts.items():
        assert n == free.amounts[a] * (free.total // 3) // free.total


def test_the_root_does_not_depend_on_input_order_and_proofs_verify() -> None:
    records = [rec(i, 1 + i % 3, 10 + i % 2, (i * 5) % 24, 0.5, 5_000 + 100 * i) for i in range(1, 40)]
    a = compute_epoch(params(), records, HOLDERS, OWNERS)
    shuffled = records[:]
    random.Random(4).shuffle(shuffled)
    b = compute_epoch(params(), shuffled, dict(reversed(HOLDERS.items())), OWNERS)
    assert a.to_epoch().root == b.to_epoch().root and a.amounts == b.amounts
    tree = a.to_epoch()
    for account in a.amounts:
        claim = tree.claim(account)
        assert claim.amount == a.amounts[account]
        assert verify(tree.root, reward_leaf(3, account, claim.amount), list(claim.proof))
    assert compute_epoch(params(epoch=4), records, HOLDERS, OWNERS).to_epoch().root != tree.root  # epoch in the leaf


def test_parameters_round_trip_and_have_a_stable_digest() -> None:
    import json

    p = params(epoch_cap=10**30)
    again = RewardParameters.from_json(json.loads(p.canonical()))
    assert again == p and again.digest() == p.digest()
    assert params(min_energy_wh=999).digest() != p.digest()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 3),
            st.sampled_from([0, 10, 11]),
            st.floats(0, 23.5),
            st.floats(0.01, 6),
            st.integers(0, 80_000),
        ),
        max_size=40,
    ),
    st.integers(0, 10**21),
)
def test_never_more_than_the_cap_and_all_rewards_accounted(rows: list, cap: int) -> None:
    records = [rec(i, c, v, h, d, wh) for i, (c, v, h, d, wh) in enumerate(rows, 1)]
    r = compute_epoch(params(epoch_cap=cap), records, HOLDERS, OWNERS)
    assert r.total <= cap
    assert r.total_before_cap == sum(s.amount for s in r.sessions)
    assert all(n > 0 for n in r.amounts.values())
    by_id = {x.record.session_id: x.record for x in records}
    self_dealt = [
        s for s in r.sessions if (by_id[s.session_id].vehicle_id, by_id[s.session_id].charger_token_id) == (11, 3)
    ]
    assert all(
        s.amount == 0 and s.reason.startswith("self-dealing")
        for s in self_dealt
        if by_id[s.session_id].energy_wh >= 1000
    )
