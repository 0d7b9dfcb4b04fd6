"""The `electra` CLI on a real anvil: the user paths, --json everywhere, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from electra.chain.bindings import Electra
from electra.chain.devchain import find_anvil
from electra.chain.keys import dev_account
from electra.cli.main import app
from electra.config import Settings
from tests.conftest import free_port

runner = CliRunner()


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "ELECTRA_DATA_DIR": str(settings.data_dir),
        "ELECTRA_DEV_CHAIN_PORT": str(settings.dev_chain_port),
        **extra,
    }


def run(settings: Settings, *args: str, **env: str) -> Result:
    return runner.invoke(app, list(args), env=env_for(settings, **env), catch_exceptions=False)


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.stdout
    err = result.stderr.strip()
    assert err.startswith("error: "), err
    assert "\n" not in err, err
    assert "Traceback" not in result.stderr + result.stdout
    return err


@pytest.fixture
def cli(electra: Electra, chain_settings: Settings) -> Settings:
    """The shared deployed chain (reverted after the test) as the CLI sees it."""
    return chain_settings


def test_station_register_show_list(cli: Settings) -> None:
    data = ok_json(
        run(
            cli,
            "station",
            "register",
            "--charger-id",
            "CP-CLI-1",
            "--lat",
            "52.520008",
            "--lon",
            "13.404954",
            "--power-kw",
            "150",
            "--connectors",
            "ccs2,type2",
            "--account",
            "1",
            "--json",
        )
    )
    assert data["token_id"] == 1
    assert data["owner"] == dev_account(1).address
    assert data["latitude"] == "52.520008"
    assert data["connector_types"] == ["IEC_62196_T2", "IEC_62196_T2_COMBO"]
    assert Path(data["device_key_file"]).exists()
    shown = ok_json(run(cli, "station", "show", "CP-CLI-1", "--json"))
    assert shown["device"] == data["device"]
    assert shown["token_uri_metadata"]["name"] == "Electra charger CP-CLI-1"
    listed = ok_json(run(cli, "station", "list", "--json"))
    assert listed["count"] == 1
    assert ok_json(run(cli, "station", "list", "--owner", dev_account(2).address, "--json"))["count"] == 0
    human = run(cli, "station", "list")
    assert human.exit_code == 0 and "CP-CLI-1" in human.stdout


def test_vehicle_self_onboarding_and_owner_registration(cli: Settings, tmp_path: Path) -> None:
    relayed = ok_json(
        run(
            cli,
            "vehicle",
            "register",
            "--vin",
            "WVWZZZE1ZPP000001",
            "--owner",
            dev_account(3).address,
            "--json",
        )
    )
    assert relayed["relayed"] is True and relayed["owner"] == dev_account(3).address
    direct = ok_json(
        run(
            cli,
            "vehicle",
            "register",
            "--vin",
            "WVWZZZE1ZPP000002",
            "--by-owner",
            "--account",
            "4",
            "--json",
        )
    )
    assert direct["relayed"] is False and direct["owner"] == dev_account(4).address
    signed_file = tmp_path / "onboard.json"
    ok_json(
        run(
            cli,
            "vehicle",
            "register",
            "--vin",
            "WVWZZZE1ZPP000003",
            "--owner",
            dev_account(5).address,
            "--sign-only",
            str(signed_file),
            "--json",
        )
    )
    relayed2 = ok_json(run(cli, "vehicle", "relay", str(signed_file), "--account", "6", "--json"))
    assert relayed2["vehicle_id"] == 3 and relayed2["owner"] == dev_account(5).address
    assert ok_json(run(cli, "vehicle", "show", "WVWZZZE1ZPP000003", "--json"))["vehicle_id"] == 3
    err = one_line_error(run(cli, "vehicle", "register", "--vin", "WVWZZZE1ZPP000001"))
    assert "already registered" in err


def test_dao_changes_the_reward_mint_cap_end_to_end(cli: Settings, electra: Electra) -> None:
    p = electra.deployment.parameters
    proposed = ok_json(
        run(
            cli,
            "dao",
            "propose",
            "--set",
            "reward-mint-cap=25000000 ELC",
            "-d",
            "Raise reward cap",
            "--json",
        )
    )
    pid = proposed["proposal_id"]
    early = one_line_error(run(cli, "dao", "vote", pid))
    assert "not opened yet" in early and "electra chain advance" in early
    ok_json(run(cli, "chain", "advance", str(p["voting_delay_s"] + 1), "--json"))
    assert ok_json(run(cli, "dao", "vote", pid, "--support", "for", "--json"))["support"] == "for"
    ok_json(run(cli, "chain", "advance", str(p["voting_period_s"] + 1), "--json"))
    assert ok_json(run(cli, "dao", "status", pid, "--json"))["state"] == "succeeded"
    ok_json(run(cli, "dao", "queue", pid, "--json"))
    assert "timelock until" in one_line_error(run(cli, "dao", "execute", pid))
    ok_json(run(cli, "chain", "advance", str(p["timelock_delay_s"] + 1), "--json"))
    assert ok_json(run(cli, "dao", "execute", pid, "--json"))["state"] == "executed"
    params = ok_json(run(cli, "dao", "params", "--json"))["parameters"]
    assert params[0]["name"] == "reward-mint-cap" and params[0]["value"] == str(25_000_000 * 10**18)
    fee = next(x for x in params if x["name"] == "protocol-fee-bps")
    assert fee["value"] == str(electra.payments.protocol_fee_bps())
    assert electra.token.reward_mint_cap() == 25_000_000 * 10**18
    assert ok_json(run(cli, "dao", "status", "--json"))["proposals"][0]["state"] == "executed"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--charger-id", "CP-1", "--lat", "91", "--lon", "13"], "invalid latitude"),
        (["--charger-id", "CP-1", "--lat", "52", "--lon", "east"], "invalid longitude"),
        (["--charger-id", "", "--lat", "52", "--lon", "13"], "empty charger id"),
        (["--charger-id", "CP 1", "--lat", "52", "--lon", "13"], "invalid charger id"),
        (
            ["--charger-id", "CP-1", "--lat", "52", "--lon", "13", "--metadata-uri", "u" * 300],
            "over the 256-byte",
        ),
        (
            ["--charger-id", "CP-1", "--lat", "52", "--lon", "13", "--connectors", "scart"],
            "unknown connector",
        ),
        (
            ["--charger-id", "CP-1", "--lat", "52", "--lon", "13", "--power-kw", "-3"],
            "invalid power",
        ),
    ],
)
def test_bad_station_input_gets_one_line(cli: Settings, args: list[str], needle: str) -> None:
    assert needle in one_line_error(run(cli, "station", "register", *args))


def test_duplicate_registration_gets_one_line(cli: Settings) -> None:
    args = ["station", "register", "--charger-id", "CP-DUP", "--lat", "1", "--lon", "2"]
    ok_json(run(cli, *args, "--json"))
    assert "already registered as token 1" in one_line_error(run(cli, *args))


def test_wrong_chain_id(cli: Settings) -> None:
    err = one_line_error(run(cli, "chain", "status", ELECTRA_CHAIN_ID="1"))
    assert "serves chain id 31337, but ELECTRA_CHAIN_ID is 1" in err


def test_unreachable_rpc(cli: Settings) -> None:
    err = one_line_error(run(cli, "station", "list", ELECTRA_RPC_URL=f"http://127.0.0.1:{free_port()}"))
    assert "cannot reach the chain RPC" in err and "ELECTRA_RPC_URL" in err


def test_dev_chain_down(tmp_path: Path) -> None:
    env = {"ELECTRA_DATA_DIR": str(tmp_path), "ELECTRA_DEV_CHAIN_PORT": str(free_port())}
    result = runner.invoke(app, ["station", "list"], env=env)
    err = one_line_error(result)
    assert "electra chain up" in err


def test_missing_deployment(cli: Settings, tmp_path: Path) -> None:
    err = one_line_error(run(cli, "station", "list", ELECTRA_DATA_DIR=str(tmp_path / "empty")))
    assert "no Electra deployment for chain id 31337" in err and "electra deploy" in err


def test_invalid_setting(cli: Settings) -> None:
    err = one_line_error(run(cli, "chain", "status", ELECTRA_RPC_URL="ftp://x"))
    assert "invalid setting rpc_url" in err


@pytest.fixture
def foreign_chain(tmp_path: Path) -> Iterator[str]:
    """A second anvil posing as a non-dev chain (chain id 4242)."""
    port = free_port()
    from electra.config import load_settings

    anvil = find_anvil(load_settings(data_dir=tmp_path))
    proc = subprocess.Popen([str(anvil), "--port", str(port), "--chain-id", "4242", "--silent"])
    import time

    from electra.chain.devchain import probe

    for _ in range(100):
        if probe(f"http://127.0.0.1:{port}"):
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_default_dev_key_refused_on_other_chains(foreign_chain: str, tmp_path: Path) -> None:
    env = {"ELECTRA_DATA_DIR": str(tmp_path), "ELECTRA_RPC_URL": foreign_chain}
    err = one_line_error(runner.invoke(app, ["deploy"], env=env))
    assert "no operator key for chain id 4242" in err
    dev_key = "0x" + dev_account(0).key.hex().removeprefix("0x")
    err = one_line_error(runner.invoke(app, ["deploy"], env={**env, "ELECTRA_PRIVATE_KEY": dev_key}))
    assert "refusing a well-known anvil dev key" in err and "4242" in err


def test_console_script_prints_one_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "electra.cli.main",
            "station",
            "register",
            "--charger-id",
            "X",
            "--lat",
            "100",
            "--lon",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"ELECTRA_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: invalid latitude 100.000000: outside -90..90 degrees; check the order (latitude first) and the sign"
    ]


def test_station_service_state_by_owner_only(cli: Settings) -> None:
    ok_json(
        run(
            cli, "station", "register", "--charger-id", "CP-SVC", "--lat", "1", "--lon", "2", "--account", "1", "--json"
        )
    )
    err = one_line_error(run(cli, "station", "deactivate", "CP-SVC", "--account", "2"))
    assert "StationRegistryNotStationOwner" in err
    assert ok_json(run(cli, "station", "deactivate", "CP-SVC", "--account", "1", "--json"))["active"] is False
    assert ok_json(run(cli, "station", "show", "CP-SVC", "--json"))["active"] is False
    assert ok_json(run(cli, "station", "activate", "1", "--account", "1", "--json"))["active"] is True
    assert ok_json(run(cli, "station", "show", "1", "--json"))["active"] is True
    assert "no charger 'CP-NOPE'" in one_line_error(run(cli, "station", "show", "CP-NOPE"))
