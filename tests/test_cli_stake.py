"""`electra stake` and the staking side of `electra dao` on a real anvil: --json, human output, and
one-line errors with a fix."""

from __future__ import annotations

from eth_account import Account

from electra.chain.bindings import Electra
from electra.chain.deploy import UNBONDING_DELAY_S
from electra.chain.keys import dev_account
from electra.config import Settings
from electra.domain.station import StationSpec
from tests.test_cli import cli as cli  # the fixture
from tests.test_cli import ok_json, one_line_error, run

ELC = 10**18
HOST, OTHER = dev_account(1), dev_account(2)


def _charger(electra: Electra, charger_id: str = "CP-STAKE-1") -> int:
    spec = StationSpec(charger_id, 52_520_008, 13_404_954, 22_000, 2, 1, b"DEELC")
    token_id, _ = electra.stations.register(spec, Account.create(), owner=HOST)
    electra.token.transfer(HOST.address, 5_000 * ELC)
    return token_id


def test_stake_add_status_withdraw(cli: Settings, electra: Electra) -> None:
    token_id = _charger(electra)
    data = ok_json(run(cli, "stake", "add", "CP-STAKE-1", "1500", "--account", "1", "--json"))
    assert (data["token_id"], data["holder"], data["staked"]) == (token_id, HOST.address, str(1_500 * ELC))
    assert (data["tier"], data["discount_bps"], data["boost_bps"], data["commission_bps"]) == (1, 1_000, 500, 90)
    assert data["approval_tx_hash"] and data["next_tier"] == {
        "tier": 2,
        "min_stake": str(10_000 * ELC),
        "missing": str(8_500 * ELC),
        "missing_elc": "8500 ELC",
    }

    status = ok_json(run(cli, "stake", "status", str(token_id), "--json"))
    assert status["bonded_elc"] == "1500 ELC" and status["unbonding_delay_s"] == UNBONDING_DELAY_S
    assert [p["staker"] for p in status["positions"]] == [HOST.address]
    assert [t["min_stake"] for t in status["tiers"]] == [str(n * ELC) for n in (1_000, 10_000, 100_000)]
    human = run(cli, "stake", "status", "CP-STAKE-1")
    assert human.exit_code == 0 and "commission" in human.stdout and "90 bps" in human.stdout

    data = ok_json(run(cli, "stake", "withdraw", "CP-STAKE-1", "600 ELC", "--account", "1", "--json"))
    assert (data["action"], data["requested"], data["unbonding"]) == ("unbonding", str(600 * ELC), str(600 * ELC))
    assert data["status"]["tier"] == 0  # 900 ELC bonded: below tier 1
    assert data["status"]["positions"][0]["unbonding_elc"] == "600 ELC"

    err = one_line_error(run(cli, "stake", "withdraw", "CP-STAKE-1", "--account", "1"))
    assert "unbond until" in err and "electra chain advance" in err
    ok_json(run(cli, "chain", "advance", str(UNBONDING_DELAY_S), "--json"))
    before = electra.token.balance_of(HOST.address)
    data = ok_json(run(cli, "stake", "withdraw", "CP-STAKE-1", "--account", "1", "--json"))
    assert (data["action"], data["withdrawn"]) == ("withdrawn", str(600 * ELC))
    assert electra.token.balance_of(HOST.address) - before == 600 * ELC

    data = ok_json(run(cli, "stake", "withdraw", "CP-STAKE-1", "all", "--account", "1", "--json"))
    assert data["requested"] == str(900 * ELC) and data["status"]["bonded"] == "0"


def test_stake_errors_are_one_line_with_a_fix(cli: Settings, electra: Electra) -> None:
    _charger(electra)
    err = one_line_error(run(cli, "stake", "add", "CP-STAKE-1", "10", "--account", "2"))
    assert f"held by {HOST.address}" in err and "--account" in err
    err = one_line_error(run(cli, "stake", "add", "CP-STAKE-1", "999999", "--account", "1"))
    assert "holds 5000 ELC" in err
    for args, needle in [
        (["stake", "add", "CP-NOPE", "10"], "no charger"),
        (["stake", "add", "CP-STAKE-1", "0", "--account", "1"], "above 0"),
        (["stake", "add", "CP-STAKE-1", "1.5e3", "--account", "1"], "plain decimal"),
        (["stake", "withdraw", "CP-STAKE-1", "--account", "2"], "start unbonding first"),
        (["stake", "withdraw", "CP-STAKE-1", "5", "--account", "1"], "bonded"),
        (["stake", "status", "CP-STAKE-1", "--staker", "0x12"], "not an address"),
    ]:
        assert needle in one_line_error(run(cli, *args)), args


def test_dao_knows_the_staking_and_rewards_parameters(cli: Settings, electra: Electra) -> None:
    params = {p["name"]: p for p in ok_json(run(cli, "dao", "params", "--json"))["parameters"]}
    assert (
        params["staking-tiers"]["value"] == f"{1_000 * ELC}:1000:500,{10_000 * ELC}:2500:1500,{100_000 * ELC}:5000:3000"
    )
    assert params["unbonding-delay-s"]["value"] == str(UNBONDING_DELAY_S)
    assert params["rewards-publisher"]["value"] == dev_account(0).address
    assert params["reward-epoch-cap"]["value"] == str(100_000 * ELC)

    data = ok_json(
        run(cli, "dao", "propose", "--set", "staking-tiers=500 ELC:500:100", "--set", "unbonding-delay-s=7200",
            "-d", "One cheap tier", "--json")
    )  # fmt: skip
    assert data["state"] == "pending"
    err = one_line_error(run(cli, "dao", "propose", "--set", "staking-tiers=5 ELC:1:1,1 ELC:2:2", "-d", "x"))
    assert "rise" in err
    err = one_line_error(run(cli, "dao", "propose", "--set", "rewards-publisher=nobody", "-d", "x"))
    assert "not an address" in err

    token_id = _charger(electra)
    data = ok_json(
        run(cli, "dao", "slash", str(token_id), HOST.address, "100 ELC", "--evidence", "0x" + "cd" * 32,
            "-d", "Forged meter values at CP-STAKE-1", "--json")
    )  # fmt: skip
    assert data["state"] == "pending"
    err = one_line_error(run(cli, "dao", "slash", str(token_id), HOST.address, "1", "--evidence", "0x12", "-d", "x"))
    assert "32 bytes" in err
    assert "wired already" in one_line_error(run(cli, "dao", "wire"))
    deployed = ok_json(run(cli, "deploy", "--json"))
    assert (deployed["deployed"], deployed["wiring_pending"]) == (False, 0)
