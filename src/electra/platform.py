"""The embedded platform: what `make run` / `electra up` starts and supervises."""

from __future__ import annotations

import time
from typing import Any

from electra import __version__
from electra.chain.client import connect
from electra.chain.deploy import deploy, manifest_path
from electra.chain.devchain import DevChain
from electra.config import Settings
from electra.errors import DevChainError
from electra.store.db import make_engine, migrate, record_run
from electra.store.models import PlatformRun


class Platform:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.devchain = DevChain(settings) if settings.uses_dev_chain else None
        self.started_chain = False

    def start(self) -> dict[str, Any]:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if self.devchain is not None:
            _, self.started_chain = self.devchain.start()
        client = connect(s)
        deployment, fresh = deploy(client, s)
        engine = make_engine(s.effective_db_url)
        migrate(engine)
        runs = record_run(
            engine,
            PlatformRun(
                started_at=int(time.time()),
                chain_id=client.chain_id,
                rpc_url=client.rpc_url,
                deployment_block=deployment.block_number,
                electra_version=__version__,
            ),
        )
        engine.dispose()
        info: dict[str, Any] = {
            "data_dir": str(s.data_dir.resolve()),
            "chain": {
                "rpc_url": client.rpc_url,
                "chain_id": client.chain_id,
                "block_number": int(client.w3.eth.block_number),
                "dev_chain": "started" if self.started_chain else ("reused" if self.devchain else "external"),
            },
            "contracts": {"deployed_now": fresh, **deployment.addresses},
            "manifest": str(manifest_path(s, client.chain_id).resolve()),
            "database": s.effective_db_url,
            "platform_runs": runs,
        }
        if self.devchain is not None:
            info["chain"]["state_file"] = str(self.devchain.state_file.resolve())
        return info

    def check(self) -> None:
        """Raises if the dev chain we started has died."""
        if self.devchain is not None and self.started_chain:
            proc = self.devchain.process
            if proc is not None and proc.poll() is not None:
                raise DevChainError(
                    f"the dev chain exited with code {proc.returncode}",
                    f"see {self.devchain.log_file}",
                )

    def stop(self, keep_chain: bool = False) -> None:
        if self.devchain is not None and self.started_chain and not keep_chain:
            self.devchain.stop()
