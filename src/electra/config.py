"""Settings, from the environment (``ELECTRA_*``) and an optional TOML settings file.

The file is ``$ELECTRA_CONFIG`` if set, else ``<data_dir>/electra.toml`` if it exists. Environment
variables win over the file. With nothing set, Electra runs on its embedded defaults: an anvil dev
chain on 127.0.0.1 and SQLite, both under ``./.electra``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from electra.errors import ConfigError

ANVIL_CHAIN_ID = 31337
ELC = 10**18


class Settings(BaseSettings):
    """Everything Electra can be configured with. See docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="ELECTRA_", extra="forbid")

    data_dir: Path = Field(default=Path(".electra"), description="Chain state, database, keys, manifests.")
    rpc_url: str | None = Field(default=None, description="JSON-RPC endpoint; unset means the embedded dev chain.")
    chain_id: int | None = Field(default=None, description="Expected chain id; refuse an endpoint that differs.")
    private_key: SecretStr | None = Field(default=None, description="Operator key (hex); dev key on anvil if unset.")
    dev_chain_host: str = "127.0.0.1"
    dev_chain_port: int = Field(default=8545, ge=1, le=65535)
    anvil_bin: Path | None = Field(default=None, description="anvil binary; default: node_modules, then PATH.")
    db_url: str | None = Field(default=None, description="SQLAlchemy URL; unset means SQLite in data_dir.")
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    csms_host: str = Field(default="127.0.0.1", description="Where the OCPP central system listens.")
    csms_port: int = Field(default=9000, ge=0, le=65535)
    api_host: str = Field(default="127.0.0.1", description="Where the REST API listens.")
    api_port: int = Field(default=8000, ge=0, le=65535, description="REST API port; 0 picks a free one.")
    api_siwe_domain: str | None = Field(
        default=None, description="The domain Sign-In with Ethereum messages must name; default: the request's Host."
    )
    api_rate_limits: Literal["auto", "memory", "database"] = Field(
        default="auto",
        description="Where the API's rate-limit buckets live: database (shared by every API process), memory "
        "(per process), auto (database on PostgreSQL, memory on SQLite).",
    )
    api_log: Path | None = Field(
        default=None, description="The REST API's JSON log lines; default <data_dir>/logs/api.jsonl; '-' is stderr."
    )
    ocpp_security_profile: int = Field(
        default=1, ge=0, le=2, description="0: no auth (dev only), 1: Basic auth, 2: Basic auth over TLS."
    )
    ocpp_tls_cert: Path | None = Field(default=None, description="PEM certificate chain; set it to serve wss://.")
    ocpp_tls_key: Path | None = Field(default=None, description="PEM private key of the certificate.")
    ocpp_heartbeat_s: int = Field(default=300, ge=10, description="Heartbeat interval given to chargers.")
    control_token: SecretStr | None = Field(
        default=None, description="Operator token for CSMS commands; default: <data_dir>/csms/control.token."
    )
    meter_signing: Literal["required", "optional"] = Field(
        default="required",
        description="Must chargers sign their meter data (OCMF)? Per charger: `electra station meter-key`.",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", description="Event loop of `electra csms` and `electra up`: uvloop, or asyncio's own."
    )

    # Deployment parameters (used by `electra deploy` on a new chain).
    voting_delay_s: int = Field(default=60, ge=0)
    voting_period_s: int = Field(default=600, ge=1)
    timelock_delay_s: int = Field(default=120, ge=0)
    quorum_percent: int = Field(default=4, ge=0, le=100)
    proposal_threshold: int = Field(default=0, ge=0)
    genesis_supply: int = Field(default=100_000_000 * ELC, ge=0)
    reward_mint_cap: int = Field(default=10_000_000 * ELC, ge=0)

    @field_validator("rpc_url")
    @classmethod
    def _check_rpc_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise PydanticCustomError("rpc_url", "must start with http:// or https://")
        return v

    @property
    def uses_dev_chain(self) -> bool:
        return self.rpc_url is None

    @property
    def effective_rpc_url(self) -> str:
        return self.rpc_url or f"http://{self.dev_chain_host}:{self.dev_chain_port}"

    @property
    def effective_db_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'electra.db').resolve()}"

    @property
    def deployments_dir(self) -> Path:
        return self.data_dir / "deployments"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def control_token_file(self) -> Path:
        return self.data_dir / "csms" / "control.token"

    @property
    def chain_dir(self) -> Path:
        return self.data_dir / "chain"


def _file_values(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(
            f"cannot read settings file {path}: {exc.strerror}", "fix the path in ELECTRA_CONFIG"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {path} is not valid TOML: {exc}", "fix the file") from exc
    return dict(raw.get("electra", raw))


def load_settings(**overrides: Any) -> Settings:
    """Builds the settings: file values, then environment variables, then explicit overrides."""
    env_config = os.environ.get("ELECTRA_CONFIG")
    data_dir = Path(overrides.get("data_dir") or os.environ.get("ELECTRA_DATA_DIR") or ".electra")
    path = Path(env_config) if env_config else data_dir / "electra.toml"
    file_values = _file_values(path) if (env_config or path.exists()) else {}
    env_keys = {k[len("ELECTRA_") :].lower() for k in os.environ if k.startswith("ELECTRA_")}
    init = {k: v for k, v in file_values.items() if k not in env_keys}
    init.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**init)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(
            f"invalid setting {field}: {first['msg']}",
            f"fix ELECTRA_{field.upper()} or the settings file",
        ) from exc
