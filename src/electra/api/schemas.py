"""The API's schemas, in families: ``XCreate`` (what a client sends to make X), ``XUpdate`` (to
change it), ``XPublic`` (what the API answers). They are separate from the ORM models.

Token amounts are decimal strings of base units (an 18-decimal amount does not fit a JSON number
a browser reads exactly); energy in Wh and times in unix milliseconds are integers.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")

BaseUnits = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,78}$"), Field(description="Base units, decimal")]
Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]
HexData = Annotated[str, StringConstraints(pattern=r"^0x([0-9a-fA-F]{2})*$")]
AssetSymbol = Literal["EUSD", "ELC"]


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemPublic(Schema):
    """RFC 9457 problem details, with Electra's stable ``code``."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    request_id: str | None = None


class Page(Schema, Generic[T]):
    items: list[T]
    next: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last")


# ---------------------------------------------------------------- ops


class HealthPublic(Schema):
    status: Literal["ok"]


class CheckPublic(Schema):
    ok: bool
    detail: str


class ReadyPublic(Schema):
    status: Literal["ready", "not-ready"]
    checks: dict[str, CheckPublic]


# ---------------------------------------------------------------- auth


class NonceCreate(Schema):
    address: Address | None = Field(None, description="Given: the answer carries the message to sign")
    statement: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]*$")


class NoncePublic(Schema):
    nonce: str
    issued_at: str
    expires_at: str
    domain: str
    uri: str
    chain_id: int | None
    message: str | None = Field(None, description="An EIP-4361 message for `address`, ready to sign")


class SiweCreate(Schema):
    message: str = Field(max_length=4096, description="The EIP-4361 message, exactly as signed")
    signature: str = Field(max_length=8200, pattern=r"^0x[0-9a-fA-F]*$")


class SessionTokenPublic(Schema):
    token: str = Field(description="Send as `Authorization: Bearer <token>`; shown once")
    token_type: Literal["Bearer"] = "Bearer"
    address: str
    wallet: Literal["eoa", "erc1271"]
    expires_at_ms: int
    vehicles: list[int]
    chargers: list[str]


class MePublic(Schema):
    principal: Literal["address", "api-key"]
    address: str | None = None
    role: str | None = None
    key_id: str | None = None
    roles: list[str]
    vehicles: list[int] = []
    chargers: list[str] = []


# ---------------------------------------------------------------- stations


class LeasePublic(Schema):
    public: bool
    windows: list[str]


class LeaseUpdate(Schema):
    public: bool = Field(description="Open to the public in its windows, or only to the allowed vehicles")
    windows: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=28, description="e.g. 'Mon-Fri 07:00-19:00' (UTC); none: at any time"
    )
    allowed_vehicles: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(
        default_factory=list, max_length=1000, description="Vehicles admitted at any time (the host's own, say)"
    )


class LeaseHeld(LeasePublic):
    """The lease as its holder sees it: with the vehicles it always admits."""

    charger_id: str
    allowed_vehicles: list[int]


class StationPublic(Schema):
    token_id: int
    charger_id: str
    owner: str
    latitude: float
    longitude: float
    max_power_w: int
    connector_types: list[str]
    ocpp_versions: int
    ocpi_compliant: bool
    operator_id: str
    device: str
    active: bool
    metadata_uri: str
    metadata_hash: str
    registered_at: int
    lease: LeasePublic


class TariffPublic(Schema):
    charger_id: str
    asset: str
    energy_price_per_wh: BaseUnits
    time_price_per_hour: BaseUnits
    idle_price_per_hour: BaseUnits
    idle_grace_s: int
    session_fee: BaseUnits
    default: bool = Field(description="True: the owner set none; the platform's default applies")


class TariffUpdate(Schema):
    asset: AssetSymbol = "EUSD"
    energy_price_per_wh: BaseUnits
    time_price_per_hour: BaseUnits = "0"
    idle_price_per_hour: BaseUnits = "0"
    idle_grace_s: int = Field(0, ge=0, le=86_400)
    session_fee: BaseUnits = "0"


class ConnectorPublic(Schema):
    connector_id: int
    status: str
    error_code: str | None
    updated_at_ms: int


class StationStatusPublic(Schema):
    charger_id: str
    connected: bool | None = Field(description="Connected to this central system now; null: not known here")
    ocpp_version: str | None
    registration: str | None
    last_seen_ms: int | None
    connectors: list[ConnectorPublic]


class NearbyPublic(Schema):
    model_config = ConfigDict(extra="allow")
    count: int
    items: list[dict[str, Any]]


class PricePublic(Schema):
    model_config = ConfigDict(extra="allow")
    charger_id: str
    published_now: bool


# ---------------------------------------------------------------- vehicles and wallets


class VehiclePublic(Schema):
    vehicle_id: int
    vin_hash: str
    owner: str
    device: str
    registered_at: int
    active: bool


class OnboardingMessage(Schema):
    vinHash: HexData
    owner: Address
    device: Address
    nonce: int = Field(ge=0, le=2**256 - 1)
    deadline: int = Field(ge=0, le=2**64 - 1)


class VehicleCreate(Schema):
    """A vehicle's self-onboarding: its device key signed the EIP-712 VehicleOnboarding; the
    platform relays it (and pays the gas)."""

    message: OnboardingMessage
    signature: HexData


class BalancePublic(Schema):
    asset: str
    address: str
    decimals: int
    balance: BaseUnits
    alert_below: BaseUnits | None
    alert_firing: bool


class WalletPublic(Schema):
    vehicle_id: int
    balances: list[BalancePublic]


class TxCallPublic(Schema):
    to: str
    data: HexData
    value: BaseUnits = "0"
    description: str


class AssetPublic(Schema):
    symbol: str
    address: str
    decimals: int


class DepositInstructionsPublic(Schema):
    vehicle_id: int
    chain_id: int
    payment_hub: str
    asset: AssetPublic
    amount: BaseUnits
    calls: list[TxCallPublic] = Field(description="Send these in order from the funding account")
    permit: dict[str, Any] | None = Field(
        None, description="EIP-2612 typed data to sign instead of the approve (then call depositWithPermit)"
    )


class TopUpCreate(Schema):
    amount_cents: int = Field(gt=0, le=10_000_000)
    currency: Literal["EUR", "USD"] = "EUR"
    provider: str = Field("sandbox", min_length=1, max_length=32, pattern=r"^[a-z0-9\-]+$")


class TopUpPublic(Schema):
    provider: str
    provider_ref: str
    checkout_url: str
    vehicle_id: int
    amount_cents: int
    currency: str
    credits: BaseUnits = Field(description="EUSD base units the vehicle gets once the provider says it is paid")


class WalletEventPublic(Schema):
    id: int | None
    kind: str
    vehicle_id: int | None
    owner: str | None
    asset: str
    amount: BaseUnits
    reference: str
    at_ms: int


class AlertPublic(Schema):
    vehicle_id: int
    asset: str
    threshold: BaseUnits
    firing: bool
    balance: BaseUnits | None
    updated_at_ms: int


class AlertUpdate(Schema):
    below: BaseUnits = Field(description="Alert when the balance is below this many base units")


# ---------------------------------------------------------------- sessions


class SessionPublic(Schema):
    id: int
    charger_id: str
    connector_id: int
    transaction_uid: str
    ocpp_version: str
    vehicle_id: int | None
    status: str
    token_status: str
    started_at_ms: int
    stopped_at_ms: int | None
    meter_start_wh: int | None
    meter_stop_wh: int | None
    energy_wh: int | None
    billable_wh: int | None
    stop_reason: str | None
    flags: list[str]
    meter_data: str | None
    settlement: str | None = Field(description="pending | batched | settled | rejected | manual; null: not billed")


class SessionCreate(Schema):
    charger_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9*\-_.:]+$")
    connector_id: int | None = Field(None, ge=0, le=1_000)
    vehicle_id: int | None = Field(None, ge=1, le=2**63 - 1, description="Whose token to start with (drivers)")
    id_token: str | None = Field(None, min_length=1, max_length=36, pattern=r"^[A-Za-z0-9\-_.:*]+$")
    wait_s: float = Field(0, ge=0, le=15, description="Wait up to this long for the charger to open the session")


class SessionStartPublic(Schema):
    charger_id: str
    charger_answer: dict[str, Any]
    session: SessionPublic | None = Field(description="The session, if the charger opened it within wait_s")


class SessionStopPublic(Schema):
    session_id: int
    charger_answer: dict[str, Any]


class ProgressPublic(Schema):
    session_id: int
    charger_id: str
    status: str
    started_at_ms: int
    duration_s: int
    energy_wh: int
    register_wh: int | None
    last_reading_at_ms: int | None
    power_w: int | None = Field(description="From the last two readings; null until there are two")
    asset: str
    cost_so_far: BaseUnits


class ReceiptPublic(Schema):
    session_id: int
    charger_id: str
    vehicle_id: int | None
    status: str
    reason: str | None
    asset: str
    amount: BaseUnits
    fee: str | None
    payee: str | None
    tariff: dict[str, Any] | None
    usage: dict[str, Any] | None
    cost: dict[str, Any] | None
    record_hash: str
    record: list[str] | None
    settlement_tx: str | None
    block: int | None


# ---------------------------------------------------------------- host views


class HostChargerPublic(Schema):
    token_id: int
    charger_id: str
    owner: str
    active: bool
    latitude: float
    longitude: float
    max_power_w: int


class AmountPublic(Schema):
    asset: str
    amount: BaseUnits


class ChargerEarningsPublic(Schema):
    charger_id: str
    asset: str
    sessions: int
    gross: BaseUnits
    fee: BaseUnits
    net: BaseUnits


class EarningsPublic(Schema):
    owner: str
    withdrawable: list[AmountPublic]
    by_charger: list[ChargerEarningsPublic]
    history: Page[WalletEventPublic]


class UtilizationPublic(Schema):
    charger_id: str
    window_start_ms: int
    window_end_ms: int
    connectors: int
    sessions: int
    energy_wh: int
    occupied_s: int
    utilization_permille: int


class TierPublic(Schema):
    min_stake: BaseUnits
    discount_bps: int
    boost_bps: int


class StakingPublic(Schema):
    charger_id: str
    token_id: int
    holder: str
    bonded: BaseUnits
    tier: int
    discount_bps: int
    boost_bps: int
    unbonding: BaseUnits
    release_at: int
    unbonding_delay_s: int
    tiers: list[TierPublic]


class TicketPublic(Schema):
    model_config = ConfigDict(extra="allow")
    id: int
    charger_id: str
    status: str


class TicketListPublic(Schema):
    count: int
    items: list[TicketPublic]


# ---------------------------------------------------------------- DAO


class ProposalPublic(Schema):
    proposal_id: str
    proposer: str
    description: str
    state: str
    votes_for: BaseUnits
    votes_against: BaseUnits
    votes_abstain: BaseUnits
    quorum: BaseUnits
    vote_start: int
    vote_end: int
    eta: int
    calls: list[TxCallPublic]


class VoteInstructionsPublic(Schema):
    proposal_id: str
    support: Literal["against", "for", "abstain"]
    state: str
    governor: str
    chain_id: int
    call: TxCallPublic = Field(description="Send this from the voting account")
    typed_data: dict[str, Any] | None = Field(
        None, description="Or sign this EIP-712 Ballot and let anyone relay castVoteBySig (needs `voter`)"
    )
    voter: str | None
    voting_power: BaseUnits | None
    has_voted: bool | None


class ParameterPublic(Schema):
    name: str
    contract: str
    unit: str
    description: str
    value: Any


# ---------------------------------------------------------------- admin


class ApiKeyPublic(Schema):
    key_id: str
    name: str
    role: str
    active: bool
    created_at_ms: int
    expires_at_ms: int | None
    revoked_at_ms: int | None
    last_used_at_ms: int | None
    replaced_by: str | None
