"""`electra wallet` on a real anvil: deposit, withdraw, a sandbox top-up end to end, balance,
history, alerts; exact amounts and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from typer.testing import CliRunner, Result

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.cli.main import app
from electra.config import Settings
from electra.domain.vehicle import vin_hash
from electra.payments.topup import top_up_id

OWNER = dev_account(3)
ELC = 10**18
EUSD = 10**6

runner = CliRunner()


class Cli:
    """The shared deployed chain (reverted after the test) with a database of this test's own."""

    def __init__(self, settings: Settings, db: Path) -> None:
        self.env = {
            "ELECTRA_DATA_DIR": str(settings.data_dir),
            "ELECTRA_DEV_CHAIN_PORT": str(settings.dev_chain_port),
            "ELECTRA_DB_URL": f"sqlite:///{db}",
        }

    def run(self, *args: str) -> Result:
        return runner.invoke(app, ["wallet", *args], env=self.env, catch_exceptions=False)

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.stderr + result.stdout
        return json.loads(result.stdout)

    def error(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 1, result.stdout
        err = result.stderr.strip()
        assert err.startswith("error: ") and "\n" not in err, err
        assert "Traceback" not in result.stderr + result.stdout
        return err


@pytest.fixture
def cli(electra: Electra, chain_settings: Settings, tmp_path: Path) -> Cli:
    return Cli(chain_settings, tmp_path / "wallet.db")


@pytest.fixture
def vehicle(electra: Electra) -> int:
    vid, _ = electra.vehicles.register(vin_hash("WVWZZZE1ZPP000009"), Account.create().address, owner=OWNER)
    return vid


def test_deposit_withdraw_balance_history(cli: Cli, electra: Electra, vehicle: int) -> None:
    d = cli.json("deposit", str(vehicle), "2.5", "--asset", "elc")
    assert (d["asset"], d["amount"], d["base_units"], d["balance"]) == ("ELC", "2.5", str(25 * ELC // 10), "2.5")
    assert d["from"] == electra.client.account.address
    assert electra.payments.balance(vehicle, electra.token.address) == 25 * ELC // 10

    w = cli.json("withdraw", str(vehicle), "0.000000000000000001", "--asset", "ELC", "--account", "3")
    assert (w["base_units"], w["to"]) == ("1", OWNER.address)
    assert electra.payments.balance(vehicle, electra.token.address) == 25 * ELC // 10 - 1

    b = cli.json("balance", str(vehicle))
    assert {r["asset"]: r["base_units"] for r in b["balances"]} == {"EUSD": "0", "ELC": str(25 * ELC // 10 - 1)}
    human = cli.run("balance", str(vehicle))
    assert human.exit_code == 0 and "2.499999999999999999" in human.stdout

    h = cli.json("history", "--vehicle", str(vehicle))
    assert [(e["kind"], e["display"], e["reference"]) for e in h["events"]] == [
        ("withdrawal", "0.000000000000000001", w["tx_hash"]),
        ("deposit", "2.5", d["tx_hash"]),
    ]
    page = cli.json("history", "--owner", OWNER.address, "--limit", "1")
    assert [e["kind"] for e in page["events"]] == ["withdrawal"] and page["next_before"] is not None
    older = cli.json("history", "--owner", OWNER.address, "--before", str(page["next_before"]))
    assert [e["kind"] for e in older["events"]] == ["deposit"] and older["next_before"] is None
    table = cli.run("history", "--vehicle", str(vehicle))
    assert table.exit_code == 0 and "withdrawal" in table.stdout and "deposit" in table.stdout


def test_topup_end_to_end_through_the_sandbox(cli: Cli, electra: Electra, vehicle: int) -> None:
    t = cli.json("topup", str(vehicle), "25.50")
    assert (t["paid"], t["credited"], t["credited_base_units"], t["balance"]) == (
        "25.50 EUR",
        "25.5",
        "25500000",
        "25.5",
    )
    assert t["tx_hash"].startswith("0x") and t["mint_tx"].startswith("0x")
    assert electra.payments.balance(vehicle, electra.stablecoin.address) == 25_500_000
    logs = electra.stablecoin.contract.events.ToppedUp().get_logs(
        from_block=0, argument_filters={"topUpId": top_up_id(t["provider_ref"])}
    )
    assert [int(lg["args"]["amount"]) for lg in logs] == [25_500_000]
    [line] = cli.json("history", "--vehicle", str(vehicle))["events"]
    assert (line["kind"], line["reference"], line["amount"]) == ("topup", t["provider_ref"], "25500000")
    human = cli.run("topup", str(vehicle), "1")
    assert human.exit_code == 0 and "credited 1 EUSD" in human.stdout
    assert electra.payments.balance(vehicle, electra.stablecoin.address) == 26_500_000


def test_alerts(cli: Cli, electra: Electra, vehicle: int) -> None:
    a = cli.json("alert", str(vehicle), "--below", "10", "--asset", "EUSD")
    assert (a["firing"], a["threshold"], a["threshold_display"], a["balance"]) == (True, str(10 * EUSD), "10", "0")
    [firing] = cli.json("alerts")["alerts"]
    assert (firing["vehicle_id"], firing["asset"]) == (vehicle, "EUSD")
    listed = cli.run("alerts")
    assert listed.exit_code == 0 and "firing" in listed.stdout

    cli.json("topup", str(vehicle), "12")  # 12 >= 10: the alert clears
    assert cli.json("alerts")["alerts"] == []
    [quiet] = cli.json("alerts", "--all")["alerts"]
    assert (quiet["firing"], quiet["balance_display"]) == (False, "12")
    # Money leaving outside the CLI is seen by --check.
    electra.payments.withdraw(vehicle, electra.stablecoin.address, 3 * EUSD, OWNER)
    assert cli.json("alerts")["alerts"] == []
    [again] = cli.json("alerts", "--check")["alerts"]
    assert again["balance_display"] == "9"
    assert cli.json("alert", str(vehicle), "--remove")["removed"] is True
    assert cli.json("alerts", "--all")["alerts"] == []
    assert "no alerts are set" in cli.run("alerts", "--all").stdout


def test_earnings_of_an_address_without_any(cli: Cli) -> None:
    e = cli.json("earnings", OWNER.address)
    assert e["earnings"] == [
        {"asset": "EUSD", "amount": "0", "base_units": "0"},
        {"asset": "ELC", "amount": "0", "base_units": "0"},
    ]


def test_errors_are_one_line(cli: Cli, electra: Electra, vehicle: int) -> None:
    v = str(vehicle)
    assert "has 7 decimals, but the token has only 6" in cli.error("deposit", v, "1.0000001")
    assert "not a plain decimal number" in cli.error("deposit", v, "1e3", "--asset", "ELC")
    assert "is zero" in cli.error("deposit", v, "0.00", "--asset", "ELC")
    assert "unknown asset" in cli.error("deposit", v, "1", "--asset", "BTC")
    assert "holds 0 EUSD" in cli.error("deposit", v, "1", "--account", "5")
    assert "no vehicle with id 999" in cli.error("deposit", "999", "1", "--asset", "ELC")
    assert "does not own vehicle" in cli.error("withdraw", v, "1", "--asset", "ELC")
    assert "fiat amount 1.005 has 3 decimals" in cli.error("topup", v, "1.005")
    assert "currency 'GBP' is not supported" in cli.error("topup", v, "5", "--currency", "GBP")
    assert "either a vehicle or an owner" in cli.error("history")
    assert "not an address" in cli.error("history", "--owner", "bob")
    assert "--below AMOUNT or --remove" in cli.error("alert", v)
    assert "both --key and --account" in cli.error("deposit", v, "1", "--from-key", "0x" + "11" * 32, "--account", "1")
    assert electra.payments.balance(vehicle, electra.token.address) == 0
