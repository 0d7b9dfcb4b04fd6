"""payments

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "balance_alerts",
        sa.Column("vehicle_id", sa.BigInteger(), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.String(length=80), nullable=False),
        sa.Column("firing", sa.Boolean(), nullable=False),
        sa.Column("last_balance", sa.String(length=80), nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("vehicle_id", "asset"),
    )
    op.create_table(
        "charge_authorizations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("vehicle_id", sa.BigInteger(), nullable=False),
        sa.Column("charger_token_id", sa.BigInteger(), nullable=False),
        sa.Column("asset", sa.String(length=42), nullable=False),
        sa.Column("max_amount", sa.String(length=80), nullable=False),
        sa.Column("expiry", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("session_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id"),
        sa.UniqueConstraint("vehicle_id", "asset", "nonce", name="uq_authorization_nonce"),
    )
    with op.batch_alter_table("charge_authorizations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_charge_authorizations_vehicle_id"), ["vehicle_id"], unique=False)

    op.create_table(
        "leases",
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("windows", sa.Text(), nullable=False),
        sa.Column("allowed_vehicles", sa.Text(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("charger_id"),
    )
    op.create_table(
        "settlement_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("raw_tx", sa.Text(), nullable=True),
        sa.Column("sender_nonce", sa.BigInteger(), nullable=True),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash"),
    )
    op.create_table(
        "tariffs",
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("energy_price_per_wh", sa.String(length=80), nullable=False),
        sa.Column("time_price_per_hour", sa.String(length=80), nullable=False),
        sa.Column("idle_price_per_hour", sa.String(length=80), nullable=False),
        sa.Column("idle_grace_s", sa.BigInteger(), nullable=False),
        sa.Column("session_fee", sa.String(length=80), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=42), nullable=False),
        sa.PrimaryKeyConstraint("charger_id"),
    )
    op.create_table(
        "topups",
        sa.Column("provider_ref", sa.String(length=128), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("vehicle_id", sa.BigInteger(), nullable=False),
        sa.Column("fiat_amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("provider_ref"),
    )
    op.create_table(
        "wallet_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("vehicle_id", sa.BigInteger(), nullable=True),
        sa.Column("owner", sa.String(length=42), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.String(length=80), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "reference", name="uq_wallet_event_ref"),
    )
    with op.batch_alter_table("wallet_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallet_events_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_wallet_events_vehicle_id"), ["vehicle_id"], unique=False)

    op.create_table(
        "settlements",
        sa.Column("session_id", sa.BigInteger(), nullable=False),
        sa.Column("authorization_id", sa.BigInteger(), nullable=True),
        sa.Column("vehicle_id", sa.BigInteger(), nullable=True),
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.String(length=80), nullable=False),
        sa.Column("breakdown", sa.Text(), nullable=False),
        sa.Column("record_hash", sa.String(length=66), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column("payee", sa.String(length=42), nullable=True),
        sa.Column("fee", sa.String(length=80), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
        ),
        sa.PrimaryKeyConstraint("session_id"),
    )
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlements_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_settlements_charger_id"), ["charger_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_settlements_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_settlements_vehicle_id"), ["vehicle_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlements_vehicle_id"))
        batch_op.drop_index(batch_op.f("ix_settlements_status"))
        batch_op.drop_index(batch_op.f("ix_settlements_charger_id"))
        batch_op.drop_index(batch_op.f("ix_settlements_batch_id"))

    op.drop_table("settlements")
    with op.batch_alter_table("wallet_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_events_vehicle_id"))
        batch_op.drop_index(batch_op.f("ix_wallet_events_owner"))

    op.drop_table("wallet_events")
    op.drop_table("topups")
    op.drop_table("tariffs")
    op.drop_table("settlement_batches")
    op.drop_table("leases")
    with op.batch_alter_table("charge_authorizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_charge_authorizations_vehicle_id"))

    op.drop_table("charge_authorizations")
    op.drop_table("balance_alerts")
