"""ocpp sessions store

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "charger_credentials",
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("rotated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("charger_id"),
    )
    op.create_table(
        "chargers",
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("ocpp_version", sa.String(length=16), nullable=False),
        sa.Column("vendor", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("registration", sa.String(length=16), nullable=False),
        sa.Column("booted_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("charger_id"),
    )
    op.create_table(
        "connector_states",
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("charger_id", "connector_id"),
    )
    op.create_table(
        "id_tokens",
        sa.Column("id_token", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("vehicle_id", sa.BigInteger(), nullable=True),
        sa.Column("owner", sa.String(length=42), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id_token"),
    )
    op.create_table(
        "ocpp_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ocpp_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ocpp_messages_charger_id"), ["charger_id"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("transaction_uid", sa.String(length=64), nullable=False),
        sa.Column("ocpp_version", sa.String(length=16), nullable=False),
        sa.Column("id_token", sa.String(length=64), nullable=False),
        sa.Column("token_status", sa.String(length=16), nullable=False),
        sa.Column("vehicle_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("meter_start_wh", sa.BigInteger(), nullable=True),
        sa.Column("stopped_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("meter_stop_wh", sa.BigInteger(), nullable=True),
        sa.Column("stop_reason", sa.String(length=32), nullable=True),
        sa.Column("energy_wh", sa.BigInteger(), nullable=True),
        sa.Column("billable_wh", sa.BigInteger(), nullable=True),
        sa.Column("flags", sa.String(length=255), nullable=False),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("charger_id", "connector_id", "started_at_ms", name="uq_sessions_charger_start"),
        sa.UniqueConstraint("charger_id", "transaction_uid", name="uq_sessions_charger_tx"),
    )
    op.create_table(
        "meter_values",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("register_wh", sa.BigInteger(), nullable=False),
        sa.Column("context", sa.String(length=32), nullable=True),
        sa.Column("signed_data", sa.Text(), nullable=True),
        sa.Column("signing_method", sa.String(length=64), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "timestamp_ms", "register_wh", name="uq_meter_values"),
    )
    with op.batch_alter_table("meter_values", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meter_values_session_id"), ["session_id"], unique=False)

    op.create_table(
        "transaction_events",
        sa.Column("session_id", sa.BigInteger(), nullable=False),
        sa.Column("seq_no", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
        ),
        sa.PrimaryKeyConstraint("session_id", "seq_no"),
    )


def downgrade() -> None:
    op.drop_table("transaction_events")
    with op.batch_alter_table("meter_values", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meter_values_session_id"))

    op.drop_table("meter_values")
    op.drop_table("sessions")
    with op.batch_alter_table("ocpp_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ocpp_messages_charger_id"))

    op.drop_table("ocpp_messages")
    op.drop_table("id_tokens")
    op.drop_table("connector_states")
    op.drop_table("chargers")
    op.drop_table("charger_credentials")
