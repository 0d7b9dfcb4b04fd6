"""Fiat top-ups: the sandbox provider's signed webhooks, and crediting each top-up exactly once on a
real anvil through the FastAPI router, including crashes between the mint, the deposit and the record."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from fastapi import FastAPI
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.domain.vehicle import vin_hash
from electra.errors import ConfigError, InvalidInput
from electra.payments.amounts import cents_to_units
from electra.payments.events import TOPUP_CREDITED
from electra.payments.providers import (
    SIGNATURE_HEADER,
    MemoryProvider,
    SandboxProvider,
    TopUpEvent,
    WebhookRejected,
    load_or_create_secret,
    sign,
)
from electra.payments.topup import TopUpService, top_up_id
from electra.payments.webhooks import WebhookReceiver, webhook_router
from electra.store.db import make_engine, migrate
from electra.store.models import TopUpRecord, WalletEventRecord

OWNER = dev_account(3)
SECRET = bytes(range(32))
T0 = 1_790_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def counter() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"{n:06d}"


def sandbox(clock: Clock | None = None, secret: bytes = SECRET) -> SandboxProvider:
    ids = counter()
    return SandboxProvider(secret, clock=clock or Clock(), new_id=lambda: next(ids))


def new_vehicle(electra: Electra, vin: str = "WVWZZZE1ZPP000001") -> int:
    vid, _ = electra.vehicles.register(vin_hash(vin), Account.create().address, owner=OWNER)
    return vid


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/topups.db")
    migrate(engine)
    yield engine
    engine.dispose()


def mints_of(electra: Electra, provider_ref: str) -> int:
    logs = electra.stablecoin.contract.events.ToppedUp().get_logs(
        from_block=0, argument_filters={"topUpId": top_up_id(provider_ref)}
    )
    return len(logs)


def eusd_balance(electra: Electra, vehicle_id: int) -> int:
    return electra.payments.balance(vehicle_id, electra.stablecoin.address)


# ---------------------------------------------------------------- the provider alone (no chain)


def test_sandbox_webhook_verifies_and_parses() -> None:
    clock = Clock()
    p = sandbox(clock)
    intent = p.create_intent(7, 2500, "eur")
    assert (intent.provider_ref, intent.currency, intent.created_at_s) == ("sbx_pi_000001", "EUR", int(T0))
    request = p.complete(intent)
    assert request.headers[SIGNATURE_HEADER].startswith(f"t={int(T0)},v1=")
    clock.t += 299  # delivered late, but within the tolerance
    event = p.parse_webhook({k.lower(): v for k, v in request.headers.items()}, request.body)
    assert event == TopUpEvent("sbx_pi_000001", 7, 2500, "EUR", "succeeded", "sbx_evt_000002")
    failed = p.parse_webhook(*_parts(p.complete(intent, succeeded=False)))
    assert failed.status == "failed"


def _parts(request: object) -> tuple[dict[str, str], bytes]:
    return dict(request.headers), request.body  # type: ignore[attr-defined]


def test_sandbox_refuses_bad_signatures() -> None:
    p = sandbox()
    request = p.complete(p.create_intent(7, 2500, "EUR"))
    tampered = request.body.replace(b'"amount_cents":2500', b'"amount_cents":250000')
    assert tampered != request.body
    cases = {
        "tampered body": (dict(request.headers), tampered),
        "no header": ({"Content-Type": "application/json"}, request.body),
        "garbage header": ({SIGNATURE_HEADER: "sha256=abc"}, request.body),
        "other secret": _parts(sandbox(secret=b"x" * 32).complete(p.create_intent(7, 2500, "EUR"))),
    }
    for name, (headers, body) in cases.items():
        with pytest.raises(WebhookRejected) as e:
            p.parse_webhook(headers, body)
        assert e.value.code == "bad_signature", name


def test_sandbox_refuses_timestamps_outside_five_minutes() -> None:
    clock = Clock()
    p = sandbox(clock)
    intent = p.create_intent(7, 100, "EUR")
    for offset, ok in ((-300, True), (300, True), (-301, False), (301, False), (-86_400, False)):
        request = p.complete(intent, at=int(T0) + offset)
        if ok:
            assert p.parse_webhook(*_parts(request)).amount_cents == 100
        else:
            with pytest.raises(WebhookRejected) as e:
                p.parse_webhook(*_parts(request))
            assert e.value.code == "stale", offset


def test_any_matching_v1_signature_is_enough() -> None:
    """A provider rotating its secret signs with the old and the new one."""
    p = sandbox()
    request = p.complete(p.create_intent(7, 100, "EUR"))
    old = sign(b"o" * 32, int(T0), request.body).rpartition("v1=")[2]
    header = f"{request.headers[SIGNATURE_HEADER]},v1={old}"
    assert p.parse_webhook({SIGNATURE_HEADER: header}, request.body).amount_cents == 100
    only_old = f"t={int(T0)},v1={old}"
    with pytest.raises(WebhookRejected):
        p.parse_webhook({SIGNATURE_HEADER: only_old}, request.body)


def test_signed_but_malformed_bodies_are_refused() -> None:
    p = sandbox()
    for body in (b"not json", b"{}", b'{"id":"e","type":"topup.refunded","data":{}}', b"[1,2]"):
        headers = {SIGNATURE_HEADER: sign(SECRET, int(T0), body)}
        with pytest.raises(WebhookRejected) as e:
            p.parse_webhook(headers, body)
        assert e.value.code == "malformed", body
    bad_amount = (
        b'{"id":"e1","type":"topup.succeeded","created":0,'
        b'"data":{"intent":"pi","vehicle_id":1,"amount_cents":-5,"currency":"EUR"}}'
    )
    with pytest.raises(WebhookRejected) as e:
        p.parse_webhook({SIGNATURE_HEADER: sign(SECRET, int(T0), bad_amount)}, bad_amount)
    assert "amount" in e.value.cause


def test_intents_are_checked() -> None:
    p = sandbox()
    for vehicle_id, cents, currency in ((0, 100, "EUR"), (1, 0, "EUR"), (1, 10_000_001, "EUR"), (1, 100, "GBP")):
        with pytest.raises(InvalidInput):
            p.create_intent(vehicle_id, cents, currency)
    with pytest.raises(InvalidInput):
        p.create_intent(1, True, "EUR")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        SandboxProvider(b"short")
    assert SECRET.hex() not in repr(p)


def test_memory_twin_accepts_only_its_own_webhooks() -> None:
    twin, other = MemoryProvider(), MemoryProvider()
    intent = twin.create_intent(3, 999, "USD")
    request = twin.complete(intent)
    assert twin.parse_webhook(*_parts(request)) == TopUpEvent(
        intent.provider_ref, 3, 999, "USD", "succeeded", "mem_evt_2"
    )
    with pytest.raises(WebhookRejected):
        other.parse_webhook(*_parts(request))


def test_secret_file_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "payments" / "sandbox.secret"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first
    path.write_text("abcd\n")
    with pytest.raises(ConfigError):
        load_or_create_secret(path)


def test_cents_become_stablecoin_base_units() -> None:
    assert cents_to_units(1) == 10_000
    assert cents_to_units(2500) == 25_000_000  # 25.00 EUR -> 25 eUSD (6 decimals)
    assert cents_to_units(1, decimals=18) == 10**16
    with pytest.raises(InvalidInput):
        cents_to_units(1, decimals=1)


# ---------------------------------------------------------------- crediting, on a real chain


class Rig:
    def __init__(self, engine: Engine, electra: Electra) -> None:
        self.clock = Clock()
        self.provider = sandbox(self.clock)
        self.service = TopUpService(engine, electra, clock=self.clock)
        self.app = FastAPI()
        self.app.include_router(webhook_router(WebhookReceiver([self.provider], self.service)))

    def post(self, headers: dict[str, str], body: bytes, provider: str = "sandbox") -> tuple[int, dict[str, object]]:
        """POSTs through the ASGI app in process (Starlette's TestClient wants a package we lack)."""

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://electra.test") as http:
                return await http.post(f"/webhooks/{provider}", content=body, headers=headers)

        r = asyncio.run(send())
        return r.status_code, r.json()


def test_signed_webhook_credits_once(electra: Electra, store_engine: Engine) -> None:
    rig = Rig(store_engine, electra)
    vid = new_vehicle(electra)
    supply = electra.stablecoin.total_supply()
    sub = rig.service.bus.subscribe([TOPUP_CREDITED])
    intent = rig.service.checkout(rig.provider, vid, 2500, "EUR")
    headers, body = _parts(rig.provider.complete(intent))

    status, answer = rig.post(headers, body)
    assert status == 200, answer
    assert (answer["status"], answer["amount"], answer["vehicle_id"]) == ("credited", "25000000", vid)
    assert eusd_balance(electra, vid) == 25_000_000
    assert electra.stablecoin.total_supply() == supply + 25_000_000
    # The operator keeps nothing: everything minted went into PaymentHub for the vehicle.
    assert electra.stablecoin.balance_of(electra.client.account.address) == 0

    status, again = rig.post(headers, body)  # the provider delivers the same event again
    assert (status, again["status"], again["tx_hash"]) == (200, "duplicate", answer["tx_hash"])
    rig.clock.t += 60
    status, second_event = rig.post(*_parts(rig.provider.complete(intent)))  # a new event, same intent
    assert (status, second_event["status"]) == (200, "duplicate")

    assert eusd_balance(electra, vid) == 25_000_000
    assert electra.stablecoin.total_supply() == supply + 25_000_000
    assert mints_of(electra, intent.provider_ref) == 1
    with Session(store_engine) as s:
        row = s.get(TopUpRecord, intent.provider_ref)
        assert row is not None
        assert (row.status, row.amount, row.fiat_amount_cents, row.tx_hash) == (
            "credited",
            "25000000",
            2500,
            answer["tx_hash"],
        )
        lines = list(s.scalars(select(WalletEventRecord).where(WalletEventRecord.kind == "topup")))
        assert [(w.vehicle_id, w.owner, w.asset, w.amount, w.reference) for w in lines] == [
            (vid, OWNER.address, "EUSD", "25000000", intent.provider_ref)
        ]
    published = sub.drain()
    assert [e.data["provider_ref"] for e in published] == [intent.provider_ref]


def test_refused_webhooks_get_clear_errors(electra: Electra, sqlite_engine: Engine) -> None:
    rig = Rig(sqlite_engine, electra)
    vid = new_vehicle(electra)
    supply = electra.stablecoin.total_supply()
    intent = rig.service.checkout(rig.provider, vid, 1000, "EUR")
    headers, body = _parts(rig.provider.complete(intent))

    status, answer = rig.post(headers, body.replace(b"1000", b"9000"))
    assert (status, answer["error"]) == (400, "bad_signature")
    status, answer = rig.post(*_parts(sandbox(secret=b"z" * 32).complete(intent)))
    assert (status, answer["error"]) == (400, "bad_signature")
    status, answer = rig.post(*_parts(rig.provider.complete(intent, at=int(T0) - 301)))
    assert (status, answer["error"]) == (400, "stale")
    assert "tolerance" in str(answer["detail"])
    garbage = b'{"hello": "world"}'
    status, answer = rig.post({SIGNATURE_HEADER: sign(SECRET, int(T0), garbage)}, garbage)
    assert (status, answer["error"]) == (400, "malformed")
    status, answer = rig.post(headers, body, provider="stripe")
    assert (status, answer["error"]) == (404, "unknown_provider")
    status, answer = rig.post(headers, b"x" * (64 * 1024 + 1))
    assert (status, answer["error"]) == (413, "too_large")

    assert electra.stablecoin.total_supply() == supply
    with Session(sqlite_engine) as s:
        assert s.scalars(select(TopUpRecord)).all() == []
    status, answer = rig.post(headers, body)  # the genuine one still goes through
    assert (status, answer["status"]) == (200, "credited")


def test_conflicting_event_for_a_known_top_up_is_refused(electra: Electra, sqlite_engine: Engine) -> None:
    rig = Rig(sqlite_engine, electra)
    vid = new_vehicle(electra)
    intent = rig.service.checkout(rig.provider, vid, 1000, "EUR")
    assert rig.post(*_parts(rig.provider.complete(intent)))[1]["status"] == "credited"
    forged = intent.__class__(**{**intent.__dict__, "amount_cents": 5000})
    status, answer = rig.post(*_parts(rig.provider.complete(forged)))
    assert (status, answer["error"]) == (400, "conflict")
    assert eusd_balance(electra, vid) == cents_to_units(1000)


def test_failed_payment_credits_nothing_until_it_succeeds(electra: Electra, sqlite_engine: Engine) -> None:
    rig = Rig(sqlite_engine, electra)
    vid = new_vehicle(electra)
    intent = rig.service.checkout(rig.provider, vid, 700, "EUR")
    status, answer = rig.post(*_parts(rig.provider.complete(intent, succeeded=False)))
    assert (status, answer["status"], answer["record_status"]) == (200, "failed", "failed")
    assert eusd_balance(electra, vid) == 0
    assert mints_of(electra, intent.provider_ref) == 0
    # The driver retries the payment on the same intent, and it goes through.
    status, answer = rig.post(*_parts(rig.provider.complete(intent)))
    assert (status, answer["status"]) == (200, "credited")
    assert eusd_balance(electra, vid) == 7_000_000
    # A late failure notice cannot undo a credited top-up.
    status, answer = rig.post(*_parts(rig.provider.complete(intent, succeeded=False)))
    assert (status, answer["status"], answer["record_status"]) == (200, "duplicate", "credited")


def test_checkout_needs_a_registered_vehicle(electra: Electra, sqlite_engine: Engine) -> None:
    rig = Rig(sqlite_engine, electra)
    with pytest.raises(InvalidInput) as e:
        rig.service.checkout(rig.provider, 99, 1000, "EUR")
    assert "no vehicle with id 99" in e.value.cause


class Crash(BaseException):
    """The process dies here (BaseException: nothing in the service may catch it)."""


def _crash(*args: object, **kwargs: object) -> None:
    raise Crash


def test_crash_between_mint_and_deposit_does_not_mint_twice(
    electra: Electra, store_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = sandbox()
    vid = new_vehicle(electra)
    supply = electra.stablecoin.total_supply()
    event = provider.parse_webhook(*_parts(provider.complete(provider.create_intent(vid, 1234, "EUR"))))

    dying = TopUpService(store_engine, electra, clock=Clock())
    monkeypatch.setattr(dying, "_deposit_once", _crash)
    with pytest.raises(Crash):
        dying.handle("sandbox", event)
    assert electra.stablecoin.total_supply() == supply + 12_340_000  # minted...
    assert eusd_balance(electra, vid) == 0  # ...but not deposited
    assert dying.get(event.provider_ref).status == "received"  # type: ignore[union-attr]

    restarted = TopUpService(store_engine, electra, clock=Clock())
    # Meanwhile another top-up of the same amount for the same vehicle is credited: its deposit
    # comes after the crashed mint and must not be taken for the crashed top-up's own.
    other = provider.parse_webhook(*_parts(provider.complete(provider.create_intent(vid, 1234, "EUR"))))
    assert restarted.handle("sandbox", other).deposited_now
    assert eusd_balance(electra, vid) == 12_340_000

    outcome = restarted.handle("sandbox", event)  # the provider's retry
    assert (outcome.status, outcome.minted_now, outcome.deposited_now) == ("credited", False, True)
    assert electra.stablecoin.total_supply() == supply + 2 * 12_340_000
    assert eusd_balance(electra, vid) == 2 * 12_340_000
    assert mints_of(electra, event.provider_ref) == 1
    assert restarted.handle("sandbox", event).status == "duplicate"


def test_crash_between_deposit_and_record_does_not_deposit_twice(
    electra: Electra, store_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = sandbox()
    vid = new_vehicle(electra)
    supply = electra.stablecoin.total_supply()
    # An earlier top-up of the same amount for the same vehicle, fully credited: its deposit must
    # not be mistaken for the crashed one's.
    earlier = provider.parse_webhook(*_parts(provider.complete(provider.create_intent(vid, 500, "EUR"))))
    first = TopUpService(store_engine, electra, clock=Clock()).handle("sandbox", earlier)
    event = provider.parse_webhook(*_parts(provider.complete(provider.create_intent(vid, 500, "EUR"))))

    dying = TopUpService(store_engine, electra, clock=Clock())
    monkeypatch.setattr(dying, "_finish", _crash)
    with pytest.raises(Crash):
        dying.handle("sandbox", event)
    assert eusd_balance(electra, vid) == 2 * 5_000_000  # deposited, not recorded
    assert dying.get(event.provider_ref).status == "received"  # type: ignore[union-attr]

    [outcome] = TopUpService(store_engine, electra, clock=Clock()).resume()  # after the restart
    assert (outcome.status, outcome.minted_now, outcome.deposited_now) == ("credited", False, False)
    assert outcome.tx_hash not in (None, first.tx_hash)
    assert eusd_balance(electra, vid) == 2 * 5_000_000
    assert electra.stablecoin.total_supply() == supply + 2 * 5_000_000
    assert mints_of(electra, event.provider_ref) == 1


def _unpause(electra: Electra) -> None:
    """The timelock (the hub's owner) unpauses; on anvil we speak for it directly."""
    timelock = electra.deployment.addresses["ElectraTimelock"]
    c = electra.client
    c.rpc("anvil_setBalance", timelock, hex(10**18))
    c.rpc("anvil_impersonateAccount", timelock)
    try:
        data = electra.payments.contract.encode_abi("unpause", args=[])
        tx = c.w3.eth.send_transaction({"from": timelock, "to": electra.payments.address, "data": data})
        assert c.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    finally:
        c.rpc("anvil_stopImpersonatingAccount", timelock)


def test_deposit_refused_by_the_chain_answers_503_and_the_retry_credits_once(
    electra: Electra, sqlite_engine: Engine
) -> None:
    rig = Rig(sqlite_engine, electra)
    vid = new_vehicle(electra)
    supply = electra.stablecoin.total_supply()
    intent = rig.service.checkout(rig.provider, vid, 300, "EUR")
    headers, body = _parts(rig.provider.complete(intent))
    electra.payments.pause()  # the operator is the guardian: deposits stop

    status, answer = rig.post(headers, body)
    assert (status, answer["error"]) == (503, "unavailable")
    assert "EnforcedPause" in str(answer["detail"])
    assert rig.service.get(intent.provider_ref).status == "received"  # type: ignore[union-attr]

    _unpause(electra)
    status, answer = rig.post(headers, body)
    assert (status, answer["status"]) == (200, "credited")
    assert eusd_balance(electra, vid) == 3_000_000
    assert electra.stablecoin.total_supply() == supply + 3_000_000
    assert mints_of(electra, intent.provider_ref) == 1
