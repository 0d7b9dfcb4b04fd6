"""ORM models. Schemas for the API are separate from these."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class PlatformRun(Base):
    """One start of the platform: when, on which chain, with which deployment."""

    __tablename__ = "platform_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    rpc_url: Mapped[str] = mapped_column(String(512), nullable=False)
    deployment_block: Mapped[int] = mapped_column(BigInteger, nullable=False)
    electra_version: Mapped[str] = mapped_column(String(32), nullable=False)


# Integer primary keys that SQLite turns into its rowid and PostgreSQL into a BIGSERIAL.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ChargerCredential(Base):
    """The slow hash of a charger's Basic-auth password (OCPP security profiles 1 and 2)."""

    __tablename__ = "charger_credentials"

    charger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    rotated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class IdTokenRecord(Base):
    """An idToken (OCPP 1.6 idTag) a charger may be authorized with: a vehicle's or a driver's."""

    __tablename__ = "id_tokens"

    id_token: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # vehicle | driver
    vehicle_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    owner: Mapped[str | None] = mapped_column(String(42), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # Accepted | Blocked
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ChargerState(Base):
    """Read model of a charger as the central system last saw it."""

    __tablename__ = "chargers"

    charger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ocpp_version: Mapped[str] = mapped_column(String(16), nullable=False)
    vendor: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    model: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    firmware: Mapped[str | None] = mapped_column(String(64), nullable=True)
    registration: Mapped[str] = mapped_column(String(16), nullable=False)  # Accepted | Rejected
    booted_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ConnectorState(Base):
    __tablename__ = "connector_states"

    charger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    connector_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SessionRecord(Base):
    """One transaction. ``id`` is the OCPP 1.6 transactionId; ``transaction_uid`` is the 2.0.1
    transactionId (or the 1.6 id as text)."""

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("charger_id", "transaction_uid", name="uq_sessions_charger_tx"),
        UniqueConstraint("charger_id", "connector_id", "started_at_ms", name="uq_sessions_charger_start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(64), nullable=False)
    connector_id: Mapped[int] = mapped_column(Integer, nullable=False)
    transaction_uid: Mapped[str] = mapped_column(String(64), nullable=False)
    ocpp_version: Mapped[str] = mapped_column(String(16), nullable=False)
    id_token: Mapped[str] = mapped_column(String(64), nullable=False)
    token_status: Mapped[str] = mapped_column(String(16), nullable=False)
    vehicle_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # active | completed
    started_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    meter_start_wh: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stopped_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    meter_stop_wh: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    energy_wh: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    billable_wh: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    flags: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    offline: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class MeterValueRecord(Base):
    """An accepted energy register reading of a session, with the signed meter data that came with it."""

    __tablename__ = "meter_values"
    __table_args__ = (UniqueConstraint("session_id", "timestamp_ms", "register_wh", name="uq_meter_values"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sessions.id"), nullable=False, index=True)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    register_wh: Mapped[int] = mapped_column(BigInteger, nullable=False)
    context: Mapped[str | None] = mapped_column(String(32), nullable=True)
    signed_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    signing_method: Mapped[str | None] = mapped_column(String(64), nullable=True)
    public_key: Mapped[str | None] = mapped_column(Text, nullable=True)


class TransactionEventSeen(Base):
    """OCPP 2.0.1 TransactionEvent sequence numbers already applied (for idempotent retransmits)."""

    __tablename__ = "transaction_events"

    session_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sessions.id"), primary_key=True)
    seq_no: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(16), nullable=False)


class OcppMessage(Base):
    """Every CALL a charger sent, as received: the raw audit log of the central system."""

    __tablename__ = "ocpp_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    message_id: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    received_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
