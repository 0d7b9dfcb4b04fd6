"""PaymentHub as a state machine on a real anvil: random deposits, batches with good and bad
entries, withdrawals, fee changes and NFT transfers, checked step by step against a model.

Funds are conserved: everything deposited is in a vehicle's balance, withdrawn by an owner, in a
holder's earnings (paid out or not) or in the fees (swept or not), and the hub's token balance is
exactly what it owes. Every example starts from the same chain state (anvil snapshot / revert).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import hypothesis.strategies as st
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.chain.payments import ChargeAuthorization, Rejection, SessionCharge
from electra.domain.station import StationSpec
from electra.domain.vehicle import vin_hash
from tests.test_payment_hub import as_timelock

USD = 10**6
HOSTS = (dev_account(1), dev_account(2), dev_account(3))
OWNER = dev_account(4)
KINDS = ("ok", "ok", "ok", "forged", "expired", "over_limit", "replayed", "double")


@dataclass
class Fixture:
    """What every example starts from: four vehicles, four chargers held by three hosts."""

    e: Electra
    usd: str
    vehicles: list[tuple[int, LocalAccount]] = field(default_factory=list)
    chargers: list[int] = field(default_factory=list)


def _fixture(e: Electra) -> Fixture:
    f = Fixture(e, e.stablecoin.address)
    for i, host in enumerate((HOSTS[0], HOSTS[0], HOSTS[1], HOSTS[2])):
        spec = StationSpec(f"CP-STATE-{i}", 48_137_154, 11_576_124, 11_000, 2, 1, b"DEELC")
        f.chargers.append(e.stations.register(spec, Account.create(), owner=host)[0])
    for i in range(4):
        device = Account.create()
        vid, _ = e.vehicles.register(vin_hash(f"WVWZZZE1ZPS{i:06d}"), device.address, owner=OWNER)
        f.vehicles.append((vid, device))
    e.stablecoin.mint(dev_account(0).address, 10**15)
    e.stablecoin.approve(e.payments.address, 2**256 - 1)
    return f


# Mostly whole cents (so fees are not all rounded away), sometimes any base-unit amount.
amounts = st.one_of(st.integers(0, 3_000).map(lambda cents: cents * 10_000), st.integers(0, 30 * USD))
entry = st.tuples(
    st.integers(0, 3),  # vehicle
    st.integers(0, 3),  # charger
    amounts,
    st.sampled_from(KINDS),
)


def _machine(f: Fixture) -> type[RuleBasedStateMachine]:
    e, hub, usd = f.e, f.e.payments, f.usd
    client = e.client

    class PaymentHubMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.snapshot = client.rpc("evm_snapshot")
            self.balance = {vid: 0 for vid, _ in f.vehicles}
            self.nonce = {vid: 0 for vid, _ in f.vehicles}
            self.holder = {c: e.stations.station(c).owner for c in f.chargers}
            self.earnings = {h.address: 0 for h in HOSTS}
            self.fee_bps = hub.protocol_fee_bps()
            self.fees = 0
            self.deposited = self.withdrawn = self.paid_out = self.swept = 0
            self.settled: set[int] = set()
            self.next_session = 1

        def teardown(self) -> None:
            assert client.rpc("evm_revert", self.snapshot) is True

        @rule(v=st.integers(0, 3), amount=st.integers(1, 6_000).map(lambda cents: cents * 10_000))
        def deposit(self, v: int, amount: int) -> None:
            vid = f.vehicles[v][0]
            hub.deposit(vid, usd, amount, approve=False)
            self.balance[vid] += amount
            self.deposited += amount

        @rule(entries=st.lists(entry, min_size=1, max_size=6))
        def settle_batch(self, entries: list[tuple[int, int, int, str]]) -> None:
            now = hub.chain_time()
            charges, expected = [], []
            nonce, balance = dict(self.nonce), dict(self.balance)
            gross: dict[int, int] = {}
            doubled = False
            for v, c, amount, kind in entries:
                vid, device = f.vehicles[v]
                charger = f.chargers[c]
                if kind == "double" and (doubled or not self.settled):
                    kind = "ok"  # a batch may not repeat a session id (the binding refuses it)
                doubled = doubled or kind == "double"
                sid = min(self.settled) if kind == "double" else self.next_session
                if kind != "double":
                    self.next_session += 1
                signer = Account.create() if kind == "forged" else device
                auth = ChargeAuthorization(
                    vid,
                    charger,
                    usd,
                    amount - 1 if kind == "over_limit" and amount > 0 else amount,
                    now - 1 if kind == "expired" else now + 3600,
                    nonce[vid] if kind == "replayed" else nonce[vid] + 1,
                )
                if kind == "over_limit" and amount == 0:
                    kind = "ok"
                charges.append(SessionCharge(sid, hub.sign(signer, auth), amount, keccak(text=f"record-{sid}")))
                why = {
                    "double": Rejection.ALREADY_SETTLED,
                    "expired": Rejection.EXPIRED,
                    "over_limit": Rejection.OVER_LIMIT,
                    "replayed": Rejection.NONCE_USED,
                    "forged": Rejection.INVALID_SIGNATURE,
                }.get(kind, Rejection.NONE)
                if why is Rejection.NONE and balance[vid] < amount:
                    why = Rejection.INSUFFICIENT_BALANCE
                if why is Rejection.NONE:
                    balance[vid] -= amount
                    nonce[vid] = auth.nonce
                    gross[charger] = gross.get(charger, 0) + amount
                expected.append(why)
            result = hub.settle_batch(usd, charges)
            assert [o.reason for o in result.outcomes] == expected
            fees = 0
            for charger, amount in gross.items():
                fee = amount * self.fee_bps // 10_000
                fees += fee
                self.earnings[self.holder[charger]] += amount - fee
            assert result.fee_amount == fees
            assert result.gross_amount == sum(gross.values())
            self.fees += fees
            self.nonce, self.balance = nonce, balance
            self.settled |= {ch.session_id for ch, why in zip(charges, expected, strict=True) if why is Rejection.NONE}

        @rule(v=st.integers(0, 3), share=st.integers(1, 4))
        def withdraw(self, v: int, share: int) -> None:
            vid = f.vehicles[v][0]
            amount = self.balance[vid] * share // 4
            if amount == 0:
                return
            hub.withdraw(vid, usd, amount, owner=OWNER)
            self.balance[vid] -= amount
            self.withdrawn += amount

        @rule(h=st.integers(0, 2))
        def withdraw_earnings(self, h: int) -> None:
            host = HOSTS[h]
            if self.earnings[host.address] == 0:
                return
            paid, _ = hub.withdraw_earnings(usd, host)
            assert paid == self.earnings[host.address]
            self.earnings[host.address] = 0
            self.paid_out += paid

        @precondition(lambda self: self.fees > 0)
        @rule()
        def sweep_fees(self) -> None:
            swept, _ = hub.sweep_fees(usd)
            assert swept == self.fees
            self.swept += swept
            self.fees = 0

        @rule(bps=st.sampled_from([0, 1, 100, 333, 1_000]))
        def set_fee(self, bps: int) -> None:
            as_timelock(e, hub.contract.functions.setProtocolFee(bps))
            self.fee_bps = bps

        @rule(c=st.integers(0, 3), h=st.integers(0, 2))
        def transfer_charger(self, c: int, h: int) -> None:
            charger, new = f.chargers[c], HOSTS[h].address
            old = self.holder[charger]
            if old == new:
                return
            sender = next(x for x in HOSTS if x.address == old)
            client.transact(e.stations.contract.functions.transferFrom(old, new, charger), sender=sender)
            self.holder[charger] = new

        @invariant()
        def chain_matches_the_model(self) -> None:
            for vid, _ in f.vehicles:
                assert hub.account(vid, usd) == (self.balance[vid], self.nonce[vid])
            for host in HOSTS:
                assert hub.earnings(host.address, usd) == self.earnings[host.address]
            assert hub.fees_accrued(usd) == self.fees

        @invariant()
        def funds_are_conserved(self) -> None:
            owed = sum(self.balance.values()) + sum(self.earnings.values()) + self.fees
            assert self.deposited == owed + self.withdrawn + self.paid_out + self.swept
            assert e.stablecoin.balance_of(hub.address) == owed
            assert min([*self.balance.values(), *self.earnings.values(), self.fees]) >= 0

    return PaymentHubMachine


def test_payment_hub_conserves_funds(electra: Electra) -> None:
    machine = _machine(_fixture(electra))
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=12,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
