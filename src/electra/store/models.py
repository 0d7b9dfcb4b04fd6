"""ORM models. Schemas for the API are separate from these."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
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
    # Signed meter data (electra.domain.meter_data.MeterData): verified | unsigned | failed, None
    # while a running session has broken no rule yet, or when nothing checks it; why it failed.
    meter_data: Mapped[str | None] = mapped_column(String(16), nullable=True)
    meter_data_detail: Mapped[str | None] = mapped_column(String(255), nullable=True)


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
    # What checking the signed data found (electra.domain.meter_data.Verification): verified |
    # unsigned | invalid (None: not checked); why it is invalid; and, from a verified record, what
    # the session's rules need: PG, TX, MS, GS (device-given text, cut to the column).
    verification: Mapped[str | None] = mapped_column(String(16), nullable=True)
    verification_detail: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ocmf_pagination: Mapped[str | None] = mapped_column(String(24), nullable=True)
    ocmf_tx: Mapped[str | None] = mapped_column(String(8), nullable=True)
    meter_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gateway_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)


class MeterKeyRecord(Base):
    """A charger's registered meter public key and its signing policy.

    Without a row (or with ``public_key`` None) the charger's meter key is its NFT device key
    (secp256k1, found by its address). ``signing``: required | optional, None for the platform's
    default (``ELECTRA_METER_SIGNING``)."""

    __tablename__ = "meter_keys"

    charger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str | None] = mapped_column(Text, nullable=True)  # hex DER SubjectPublicKeyInfo
    curve: Mapped[str | None] = mapped_column(String(32), nullable=True)
    signing: Mapped[str | None] = mapped_column(String(16), nullable=True)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


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


# -- payments -------------------------------------------------------------------------------------
# Token amounts can exceed 64 bits (18-decimal tokens), so they are stored as decimal text of the
# integer: exact on every backend; sums are done in Python.


class TariffRecord(Base):
    """A charger's tariff, set by its owner within the DAO's bounds."""

    __tablename__ = "tariffs"

    charger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    asset: Mapped[str] = mapped_column(String(16), nullable=False)
    energy_price_per_wh: Mapped[str] = mapped_column(String(80), nullable=False)
    time_price_per_hour: Mapped[str] = mapped_column(String(80), nullable=False)
    idle_price_per_hour: Mapped[str] = mapped_column(String(80), nullable=False)
    idle_grace_s: Mapped[int] = mapped_column(BigInteger, nullable=False)
    session_fee: Mapped[str] = mapped_column(String(80), nullable=False)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(42), nullable=False)


class LeaseRecord(Base):
    """Whether a charger is leased to the public, and when. ``windows`` is the JSON list of
    availability windows (docs/payments.md); empty means always."""

    __tablename__ = "leases"

    charger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public: Mapped[bool] = mapped_column(Boolean, nullable=False)
    windows: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    allowed_vehicles: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ChargeAuthorizationRecord(Base):
    """A vehicle's signed EIP-712 ChargeAuthorization, as submitted; used by at most one session."""

    __tablename__ = "charge_authorizations"
    __table_args__ = (UniqueConstraint("vehicle_id", "asset", "nonce", name="uq_authorization_nonce"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    vehicle_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    charger_token_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    asset: Mapped[str] = mapped_column(String(42), nullable=False)
    max_amount: Mapped[str] = mapped_column(String(80), nullable=False)
    expiry: Mapped[int] = mapped_column(BigInteger, nullable=False)
    nonce: Mapped[int] = mapped_column(BigInteger, nullable=False)
    signature: Mapped[str] = mapped_column(Text, nullable=False)
    signer: Mapped[str] = mapped_column(String(42), nullable=False)
    session_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SettlementBatchRecord(Base):
    """One settleBatch transaction. The signed transaction is stored before it is sent, so after a
    crash the very same bytes (same nonce, same hash) are looked up or sent again: never a second
    transaction for the same batch."""

    __tablename__ = "settlement_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # signed | confirmed | failed
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True, unique=True)
    raw_tx: Mapped[str | None] = mapped_column(Text, nullable=True)
    sender_nonce: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    entries: Mapped[int] = mapped_column(Integer, nullable=False)
    gas_used: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    block_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)  # looked at again after reorgs
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SettlementRecord(Base):
    """The outbox: a completed session's charge, written in the same transaction that completes the
    session, then settled on-chain exactly once."""

    __tablename__ = "settlements"

    session_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("sessions.id"), primary_key=True)
    authorization_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    vehicle_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    charger_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    asset: Mapped[str] = mapped_column(String(16), nullable=False)
    amount: Mapped[str] = mapped_column(String(80), nullable=False)
    breakdown: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: tariff, usage, cost lines
    record_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    # pending | batched | settled | rejected | manual (needs a human: no authorization, flagged meter)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    batch_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    payee: Mapped[str | None] = mapped_column(String(42), nullable=True)
    fee: Mapped[str | None] = mapped_column(String(80), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class WalletEventRecord(Base):
    """Transaction history: deposits, withdrawals, top-ups and charges of a vehicle, earnings and
    payouts of an owner."""

    __tablename__ = "wallet_events"
    __table_args__ = (UniqueConstraint("kind", "reference", name="uq_wallet_event_ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    vehicle_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    owner: Mapped[str | None] = mapped_column(String(42), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # deposit|withdrawal|topup|charge|earning|payout
    asset: Mapped[str] = mapped_column(String(16), nullable=False)
    amount: Mapped[str] = mapped_column(String(80), nullable=False)
    reference: Mapped[str] = mapped_column(String(128), nullable=False)  # tx hash, session id, provider event id
    at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class TopUpRecord(Base):
    """A fiat top-up from a payment provider, credited once per provider event."""

    __tablename__ = "topups"

    provider_ref: Mapped[str] = mapped_column(String(128), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), nullable=False)
    vehicle_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fiat_amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount: Mapped[str] = mapped_column(String(80), nullable=False)  # stablecoin base units credited
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # received | credited | failed
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class BalanceAlertRecord(Base):
    """A vehicle's low-balance threshold per asset, and whether it is firing."""

    __tablename__ = "balance_alerts"

    vehicle_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    asset: Mapped[str] = mapped_column(String(16), primary_key=True)
    threshold: Mapped[str] = mapped_column(String(80), nullable=False)
    firing: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    last_balance: Mapped[str | None] = mapped_column(String(80), nullable=True)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


# -- session log ----------------------------------------------------------------------------------
# The tamper-evident log (electra.domain.session_log, docs/formats.md). Hashes are 0x-prefixed
# lower-case hex, like every hash in this schema; an event's payload is the exact canonical ASCII
# that was hashed.


class LogEventRecord(Base):
    """One event of a charger's hash chain. ``id`` is its global position in the log."""

    __tablename__ = "session_log_events"
    __table_args__ = (
        UniqueConstraint("charger_id", "chain_index", name="uq_session_log_chain"),
        # Idempotency: an event is logged once. Keyed by session first, so new keys land at the
        # index's recent end instead of at random (a unique index on the digest alone made
        # ingest three times slower).
        UniqueConstraint("session_id", "digest", name="uq_session_log_event"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(64), nullable=False)
    chain_index: Mapped[int] = mapped_column(BigInteger, nullable=False)  # 1, 2, 3, ... per charger
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    session_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)  # canonical JSON
    digest: Mapped[str] = mapped_column(String(66), nullable=False)  # keccak256(payload)
    prev_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    hash: Mapped[str] = mapped_column(String(66), nullable=False)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class LogHeadRecord(Base):
    """The last event of each charger's chain; appends lock this row, so a chain never forks."""

    __tablename__ = "session_log_heads"

    charger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class LogCounterRecord(Base):
    """Counters taken under a row lock: ``record_seq`` (the last record's seq, so seqs have no
    gaps) and ``anchor_batch`` (held while a batch is built, so batches never overlap)."""

    __tablename__ = "session_log_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SessionLogRecord(Base):
    """A finished session's record (the leaf values of electra.domain.record, in columns), with its
    global sequence number, its leaf, the hash of the session.recorded event that logged it and the
    anchor batch it went into."""

    __tablename__ = "session_log_records"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    session_id: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    charger_id: Mapped[str] = mapped_column(String(64), nullable=False)
    charger_token_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    vehicle_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    started_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    stopped_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    meter_start_wh: Mapped[int] = mapped_column(BigInteger, nullable=False)
    meter_stop_wh: Mapped[int] = mapped_column(BigInteger, nullable=False)
    energy_wh: Mapped[int] = mapped_column(BigInteger, nullable=False)
    asset: Mapped[str] = mapped_column(String(42), nullable=False)
    amount: Mapped[str] = mapped_column(String(80), nullable=False)  # uint256 as decimal text
    leaf: Mapped[str] = mapped_column(String(66), nullable=False)
    event_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    batch_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class AnchorBatchRecord(Base):
    """Consecutive records as one Merkle tree. Stored with its root (status ``built``) before its
    transaction is sent; the signed transaction is stored before sending (``submitted``), so an
    anchoring worker that crashes sends the same bytes again or finds them mined (``anchored``)."""

    __tablename__ = "anchor_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    first_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    root: Mapped[str] = mapped_column(String(66), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)  # built | submitted | anchored
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True, unique=True)
    raw_tx: Mapped[str | None] = mapped_column(Text, nullable=True)
    nonce: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    block_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)  # looked at again after reorgs
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SiteRecord(Base):
    """A site's grid connection: a power limit (W) or a current per phase (A), shared by its chargers."""

    __tablename__ = "sites"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    limit_w: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    limit_a: Mapped[int | None] = mapped_column(Integer, nullable=True)  # per phase, L1-L3
    voltage_v: Mapped[int] = mapped_column(Integer, nullable=False)  # phase to neutral
    min_current_a: Mapped[int] = mapped_column(Integer, nullable=False)  # below it a session cannot run
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SiteChargerRecord(Base):
    """A charger behind a site's connection: which phases it draws on and what it can take."""

    __tablename__ = "site_chargers"

    charger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), ForeignKey("sites.site_id"), nullable=False, index=True)
    phases: Mapped[str] = mapped_column(String(8), nullable=False)  # "L1L2L3", "L1", "L2", "L3"
    max_power_w: Mapped[int] = mapped_column(BigInteger, nullable=False)


class OcpiLocationRecord(Base):
    """A Location imported from an OCPI source: a read model; nothing of it is on-chain."""

    __tablename__ = "ocpi_locations"

    country_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    party_id: Mapped[str] = mapped_column(String(3), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    latitude_e6: Mapped[int] = mapped_column(BigInteger, nullable=False)
    longitude_e6: Mapped[int] = mapped_column(BigInteger, nullable=False)
    connector_types: Mapped[int] = mapped_column(Integer, nullable=False)
    max_power_w: Mapped[int] = mapped_column(BigInteger, nullable=False)
    public: Mapped[bool] = mapped_column(Boolean, nullable=False)
    availability: Mapped[str] = mapped_column(String(16), nullable=False)
    last_updated: Mapped[str] = mapped_column(String(32), nullable=False)
    source: Mapped[str] = mapped_column(String(255), nullable=False)
    imported_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


# -- intelligence ---------------------------------------------------------------------------------
# Maintenance tickets and published price quotes (electra.intelligence, docs/intelligence.md).


class MaintenanceTicketRecord(Base):
    """A charger the risk model flagged: open, then scheduled (a visit booked), then closed. At most
    one ticket per charger is not closed (a partial unique index)."""

    __tablename__ = "maintenance_tickets"
    __table_args__ = (
        Index(
            "uq_maintenance_ticket_live",
            "charger_id",
            unique=True,
            sqlite_where=text("status != 'closed'"),
            postgresql_where=text("status != 'closed'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    charger_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)  # open | scheduled | closed
    risk_permille: Mapped[int] = mapped_column(Integer, nullable=False)  # when it was opened
    reasons: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list of evidence lines
    last_risk_permille: Mapped[int] = mapped_column(Integer, nullable=False)
    last_scored_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    opened_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    scheduled_for_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    closed_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(255), nullable=True)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class PriceQuoteRecord(Base):
    """A charger's dynamic price for one hour, written once: the price a session that starts in
    that hour pays, whatever later quotes say."""

    __tablename__ = "price_quotes"

    charger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    valid_from_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    valid_until_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    asset: Mapped[str] = mapped_column(String(16), nullable=False)
    energy_price_per_wh: Mapped[str] = mapped_column(String(80), nullable=False)
    multiplier_bps: Mapped[int] = mapped_column(Integer, nullable=False)
    quote: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: PriceQuote.to_json()
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


# -- api ------------------------------------------------------------------------------------------
# Sign-In with Ethereum and API keys (electra.api, docs/api.md). Secrets are never stored: a
# bearer token or an API key secret is kept as its SHA-256 (both are 256-bit random values, so a
# slow hash would add nothing but latency to every request).


class AuthNonceRecord(Base):
    """A nonce the server handed out for an EIP-4361 message: used at most once, before it expires."""

    __tablename__ = "auth_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    issued_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    used_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AuthSessionRecord(Base):
    """A signed-in address's bearer token (its SHA-256), until it expires or is logged out."""

    __tablename__ = "auth_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(42), nullable=False, index=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    wallet: Mapped[str] = mapped_column(String(16), nullable=False)  # eoa | erc1271
    nonce: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class WebActionRecord(Base):
    """A signed web action waiting for its wallet's signature (electra.web.actions.ActionBook):
    the row is deleted when the action is taken, so it is done at most once, by any API process."""

    __tablename__ = "web_actions"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    account: Mapped[str] = mapped_column(String(42), nullable=False)
    params: Mapped[str] = mapped_column(Text, nullable=False)  # JSON
    statement: Mapped[str] = mapped_column(Text, nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)  # unix seconds


class RateBucketRecord(Base):
    """One caller's token bucket, shared by every API process on this database
    (electra.api.ratelimit.DatabaseRateLimiter): milli-requests left, as of ``at_ms``."""

    __tablename__ = "api_rate_buckets"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # key | address | ip
    who: Mapped[str] = mapped_column(String(128), primary_key=True)
    tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    allowed: Mapped[bool] = mapped_column(Boolean, nullable=False)  # was the last request let through


class ApiKeyRecord(Base):
    """An operator's or an integration's API key: ``elk_<key_id>_<secret>``; only the secret's
    SHA-256 is kept. A rotated key keeps working until ``expires_at_ms``."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)  # operator | admin
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_used_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
