"""Settings: defaults, the settings file, the environment, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from electra.config import load_settings
from electra.errors import ConfigError


def test_embedded_defaults(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    assert s.uses_dev_chain
    assert s.effective_rpc_url == "http://127.0.0.1:8545"
    assert s.effective_db_url == f"sqlite:///{(tmp_path / 'electra.db').resolve()}"


def test_settings_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "electra.toml").write_text('[electra]\nrpc_url = "https://rpc.example"\nchain_id = 10\n')
    s = load_settings(data_dir=tmp_path)
    assert (s.rpc_url, s.chain_id) == ("https://rpc.example", 10)
    monkeypatch.setenv("ELECTRA_CHAIN_ID", "8453")
    assert load_settings(data_dir=tmp_path).chain_id == 8453


def test_bad_file_and_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "electra.toml").write_text("rpc_url = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(data_dir=tmp_path)
    (tmp_path / "electra.toml").write_text("dev_chain_port = 70000\n")
    with pytest.raises(ConfigError, match="dev_chain_port"):
        load_settings(data_dir=tmp_path)
    monkeypatch.setenv("ELECTRA_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_settings(data_dir=tmp_path)


def test_secret_key_is_not_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELECTRA_PRIVATE_KEY", "0x" + "ab" * 32)
    s = load_settings(data_dir=tmp_path)
    assert "abab" not in repr(s)
