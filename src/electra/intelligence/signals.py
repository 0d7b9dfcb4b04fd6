"""What the intelligence models read about a charger, whatever it came from: the store
(:mod:`electra.intelligence.store`) or the simulated history (:mod:`electra.intelligence.history`).

Plain values, no I/O: a charger's sessions with how they ended, and the StatusNotifications it
sent. Times are milliseconds since the epoch (UTC); energy is integer Wh.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEK_H = 168

# Stop reasons (OCPP 1.6 StopTransaction.reason, 2.0.1 TransactionEvent stoppedReason) that mean the
# charger, not the driver, ended the session.
FAILED_STOP_REASONS = frozenset(
    {
        "EmergencyStop",
        "PowerLoss",
        "HardReset",
        "SoftReset",
        "Reboot",
        "Other",
        "GroundFault",
        "OvercurrentFault",
        "PowerQuality",
        "ImmediateReset",
    }
)
# Session flags (electra.domain.session.Flag) that say the meter misbehaved.
METER_ANOMALY_FLAGS = frozenset({"meter_backwards", "conflicting_reading"})

# OCPP 1.6 ChargePointErrorCode values, grouped by what they say about the hardware. A 2.0.1
# charger's StatusNotification has no error code: its Faulted status counts as "Faulted".
HARDWARE_ERRORS = frozenset(
    {
        "GroundFailure",
        "OverCurrentFailure",
        "OverVoltage",
        "UnderVoltage",
        "PowerSwitchFailure",
        "HighTemperature",
        "InternalError",
        "Faulted",
    }
)
METER_ERRORS = frozenset({"PowerMeterFailure"})
SOFT_ERRORS = frozenset(
    {
        "ConnectorLockFailure",
        "EVCommunicationError",
        "ReaderFailure",
        "ResetFailure",
        "WeakSignal",
        "LocalListConflict",
        "OtherError",
    }
)


@dataclass(frozen=True)
class SessionOutcome:
    """One session of a charger, and how it ended."""

    connector_id: int
    started_at_ms: int
    stopped_at_ms: int  # an active session's is the time it was read at
    energy_wh: int = 0
    stop_reason: str = ""
    flags: frozenset[str] = frozenset()

    @property
    def failed(self) -> bool:
        """The charger ended it, the meter misbehaved, or it delivered nothing."""
        return self.stop_reason in FAILED_STOP_REASONS or bool(self.flags) or self.energy_wh <= 0

    @property
    def meter_anomaly(self) -> bool:
        return bool(self.flags & METER_ANOMALY_FLAGS)


@dataclass(frozen=True)
class StatusEvent:
    """One StatusNotification: ``error_code`` is OCPP 1.6's (``NoError`` when fine)."""

    at_ms: int
    connector_id: int
    status: str
    error_code: str = "NoError"

    @property
    def fault(self) -> bool:
        return self.status == "Faulted" or self.error_code not in ("NoError", "")


@dataclass(frozen=True)
class ChargerHistory:
    """A charger's sessions and status notifications, each sorted by time."""

    charger_id: str
    site: str
    connectors: int
    sessions: tuple[SessionOutcome, ...] = ()
    statuses: tuple[StatusEvent, ...] = ()
    current_status: tuple[str, ...] = field(default=())  # each connector's status now, if known
