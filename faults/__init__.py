"""Electra's fault suite: the platform's parts on loopback, broken on purpose, and checked against
ground truth that does not come from the part under test.

    uv run python -m faults                      # every scenario, full length (make faults)
    uv run python -m faults --quick              # shorter outages and fewer chargers (CI)
    uv run python -m faults kill9 reorg          # some scenarios

Scenarios (one module each):

=============  ========================================================================================
kill9          the central system is killed with SIGKILL mid-session under a fleet of simulated
               chargers, then restarted; sessions, energy and cost against the simulators' records
chain_outage   the chain's RPC is cut for 60 s (a TCP proxy on loopback) while the settlement and
               anchoring workers run; nothing lost or settled twice, the backlog drains
reorg          anvil undoes recent blocks (evm_snapshot / evm_revert) holding settlements and anchors;
               they are detected and resolved exactly once
db_restart     PostgreSQL is stopped and started again under load; the central system reports, keeps
               running, retries, and loses nothing it confirmed
storm          10,000 raw websocket chargers reconnect within 60 s of a central-system restart
disk           a full disk (2 MiB tmpfs) and a read-only data directory: one clear error, no corruption
=============  ========================================================================================

Each scenario prints what it did and each check with its numbers; the run exits non-zero if any
check failed. Everything listens on 127.0.0.1 and stops by itself.
"""
