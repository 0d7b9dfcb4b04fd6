"""Sign-In with Ethereum and API keys over a real uvicorn and a real anvil: nonces are single use
and expire, a contract wallet signs in through EIP-1271, tokens and keys are hashed at rest, keys
are made, rotated and revoked with `electra api-key`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from electra.api.app import create_app
from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.cli.main import app as cli
from electra.store.db import make_engine, migrate
from electra.store.models import ApiKeyRecord, AuthSessionRecord
from tests.apiworld import bearer, register_vehicle, serve, sign_in


def _engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    migrate(engine)
    return engine


def test_sign_in_me_logout_and_the_nonce_is_single_use(electra: Electra, tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    driver = dev_account(5)
    vehicle_id = register_vehicle(electra, "WVWZZZAUTH0000001", driver.address)
    with serve(create_app(engine, lambda: electra)) as url:
        r = httpx.post(f"{url}/api/v1/auth/nonce", json={"address": driver.address}, timeout=10)
        body = r.json()
        assert body["chain_id"] == 31337 and body["domain"] == url.removeprefix("http://") and len(body["nonce"]) >= 8
        message = body["message"]
        signature = "0x" + bytes(driver.sign_message(encode_defunct(text=message)).signature).hex()
        r = httpx.post(f"{url}/api/v1/auth/siwe", json={"message": message, "signature": signature}, timeout=30)
        assert r.status_code == 200, r.text
        signed = r.json()
        assert signed["address"] == driver.address and signed["wallet"] == "eoa" and signed["vehicles"] == [vehicle_id]
        again = httpx.post(f"{url}/api/v1/auth/siwe", json={"message": message, "signature": signature}, timeout=30)
        assert again.status_code == 401 and again.json()["code"] == "siwe-nonce"
        me = httpx.get(f"{url}/api/v1/auth/me", headers=bearer(signed["token"]), timeout=30).json()
        assert me["roles"] == ["driver"] and me["vehicles"] == [vehicle_id]
        stranger = Account.create()
        r = httpx.post(f"{url}/api/v1/auth/nonce", json={"address": driver.address}, timeout=10)
        fresh = r.json()["message"]
        forged = "0x" + bytes(stranger.sign_message(encode_defunct(text=fresh)).signature).hex()
        r = httpx.post(f"{url}/api/v1/auth/siwe", json={"message": fresh, "signature": forged}, timeout=30)
        assert r.status_code == 401 and r.json()["code"] == "siwe-signature"
        other_domain = fresh.replace(url.removeprefix("http://"), "evil.example", 1)
        r = httpx.post(f"{url}/api/v1/auth/siwe", json={"message": other_domain, "signature": forged}, timeout=30)
        assert r.status_code == 401 and r.json()["code"] == "siwe-domain"
        r = httpx.post(f"{url}/api/v1/auth/logout", headers=bearer(signed["token"]), timeout=10)
        assert r.status_code == 204
        r = httpx.get(f"{url}/api/v1/auth/me", headers=bearer(signed["token"]), timeout=10)
        assert r.status_code == 401
    with Session(engine) as s:  # the store holds a hash of the token, never the token
        stored = list(s.scalars(select(AuthSessionRecord.token_hash)))
        dump = "\n".join(str(row) for row in s.execute(text("SELECT * FROM auth_sessions")))
    assert len(stored) == 1 and signed["token"] not in dump and stored[0] != signed["token"]


def test_an_expired_nonce_is_refused(electra: Electra, tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    now = [1_800_000_000.0]
    driver = dev_account(5)
    with serve(create_app(engine, lambda: electra, clock=lambda: now[0])) as url:
        message = httpx.post(f"{url}/api/v1/auth/nonce", json={"address": driver.address}, timeout=10).json()["message"]
        now[0] += 301  # the nonce lives 300 s
        signature = "0x" + bytes(driver.sign_message(encode_defunct(text=message)).signature).hex()
        r = httpx.post(f"{url}/api/v1/auth/siwe", json={"message": message, "signature": signature}, timeout=30)
        assert r.status_code == 401 and r.json()["code"] == "siwe-nonce"


def test_a_contract_wallet_signs_in_through_eip_1271(electra: Electra, tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    key = Account.create()
    wallet, _ = electra.client.deploy("TestSmartWallet", key.address)
    vehicle_id = register_vehicle(electra, "WVWZZZ1271000001", wallet)

    def wallet_signs(message: str) -> str:  # the wallet's key signs the EIP-191 digest it is asked about
        return "0x" + bytes(key.unsafe_sign_hash(defunct_hash_message(text=message)).signature).hex()

    with serve(create_app(engine, lambda: electra)) as url:

        class Contract:
            address = wallet

            @staticmethod
            def sign_message(_: object) -> None:
                raise AssertionError("a contract has no key")

        token = sign_in(url, Contract, sign=wallet_signs)  # type: ignore[arg-type]
        me = httpx.get(f"{url}/api/v1/auth/me", headers=bearer(token), timeout=30).json()
        assert me["address"] == wallet and me["vehicles"] == [vehicle_id]
        # a key that is not the wallet's signer is refused by the contract
        message = httpx.post(f"{url}/api/v1/auth/nonce", json={"address": wallet}, timeout=10).json()["message"]
        bad = "0x" + bytes(Account.create().unsafe_sign_hash(defunct_hash_message(text=message)).signature).hex()
        r = httpx.post(f"{url}/api/v1/auth/siwe", json={"message": message, "signature": bad}, timeout=30)
        assert r.status_code == 401 and r.json()["code"] == "siwe-signature"


def test_api_keys_are_made_rotated_and_revoked_by_the_cli_and_kept_hashed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    runner = CliRunner()
    env = {"ELECTRA_DATA_DIR": str(data_dir)}

    def run(*args: str) -> dict:  # type: ignore[type-arg]
        r = runner.invoke(cli, ["api-key", *args, "--json"], env=env)
        assert r.exit_code == 0, r.output
        return dict(json.loads(r.output))

    made = run("create", "--name", "fleet dashboard", "--role", "operator")
    secret = made["api_key"]
    assert secret.startswith("elk_") and made["role"] == "operator" and made["active"] is True
    bad = runner.invoke(cli, ["api-key", "create", "--name", "x", "--role", "root"], env=env)
    assert bad.exit_code == 1 and "role" in bad.output
    engine = make_engine(f"sqlite:///{data_dir}/electra.db")
    with serve(create_app(engine)) as url:
        r = httpx.get(f"{url}/api/v1/auth/me", headers={"X-API-Key": secret}, timeout=10)
        assert r.status_code == 200 and r.json()["role"] == "operator"
        rotated = run("rotate", made["key_id"], "--grace-s", "60")
        assert rotated["replaces"] == made["key_id"] and rotated["api_key"] != secret
        assert httpx.get(f"{url}/api/v1/auth/me", headers={"X-API-Key": secret}, timeout=10).status_code == 200
        assert (
            httpx.get(f"{url}/api/v1/auth/me", headers={"X-API-Key": rotated["api_key"]}, timeout=10).status_code == 200
        )
        run("revoke", made["key_id"])
        assert httpx.get(f"{url}/api/v1/auth/me", headers={"X-API-Key": secret}, timeout=10).status_code == 401
        listed = run("list")["keys"]
        assert [k["key_id"] for k in listed] == [rotated["key_id"]]
        assert {k["key_id"] for k in run("list", "--all")["keys"]} == {made["key_id"], rotated["key_id"]}
    with Session(engine) as s:
        dump = "\n".join(str(row) for row in s.execute(text("SELECT * FROM api_keys")))
        hashes = list(s.scalars(select(ApiKeyRecord.secret_hash)))
    assert secret.rpartition("_")[2] not in dump and rotated["api_key"].rpartition("_")[2] not in dump
    assert len(hashes) == 2 and all(len(h) == 64 for h in hashes)


def test_admins_list_and_revoke_keys_over_the_api_but_not_their_own(tmp_path: Path) -> None:
    from electra.api.auth import ApiKeyBook

    engine = _engine(tmp_path)
    book = ApiKeyBook(engine)
    admin, operator = book.create("root", "admin"), book.create("ops", "operator")
    with serve(create_app(engine)) as url:
        h = {"X-API-Key": admin.secret}
        listed = httpx.get(f"{url}/api/v1/admin/api-keys", headers=h, timeout=10).json()
        assert {k["key_id"] for k in listed} == {admin.key.key_id, operator.key.key_id}
        assert all("secret" not in json.dumps(k) and "hash" not in json.dumps(k) for k in listed)
        r = httpx.delete(f"{url}/api/v1/admin/api-keys/{admin.key.key_id}", headers=h, timeout=10)
        assert r.status_code == 409 and r.json()["code"] == "own-key"
        r = httpx.delete(f"{url}/api/v1/admin/api-keys/{operator.key.key_id}", headers=h, timeout=10)
        assert r.status_code == 200 and r.json()["active"] is False
        assert httpx.get(f"{url}/api/v1/auth/me", headers={"X-API-Key": operator.secret}, timeout=10).status_code == 401


def test_migration_0008_goes_down_to_0007_and_up_again(store_engine) -> None:  # type: ignore[no-untyped-def]
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from electra.api.auth import ApiKeyBook, NonceBook
    from electra.store.db import MIGRATIONS
    from electra.store.models import Base

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    tables = {"auth_nonces", "auth_sessions", "api_keys"}

    def to(revision: str, up: bool) -> set[str]:
        with store_engine.begin() as conn:
            cfg.attributes["connection"] = conn
            (command.upgrade if up else command.downgrade)(cfg, revision)
        return set(inspect(store_engine).get_table_names())

    assert tables <= to("head", True)
    with store_engine.connect() as conn:  # 0008 builds exactly what the models describe
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    down = to("0007", False)
    assert not tables & down and "maintenance_tickets" in down
    assert tables <= to("head", True)
    nonce, _ = NonceBook(store_engine).issue()
    assert NonceBook(store_engine).consume(nonce) and not NonceBook(store_engine).consume(nonce)
    issued = ApiKeyBook(store_engine).create("after the round trip", "admin")
    assert ApiKeyBook(store_engine).principal(issued.secret).role == "admin"
