"""session log: hash-chained events, records with a global sequence, anchor batches

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "session_log_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("chain_index", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=66), nullable=False),
        sa.Column("prev_hash", sa.String(length=66), nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("charger_id", "chain_index", name="uq_session_log_chain"),
        sa.UniqueConstraint("session_id", "digest", name="uq_session_log_event"),
    )
    op.create_table(
        "session_log_heads",
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("last_index", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=66), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("charger_id"),
    )
    counters = op.create_table(
        "session_log_counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(counters, [{"name": "record_seq", "value": 0}, {"name": "anchor_batch", "value": 0}])
    op.create_table(
        "session_log_records",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("session_id", sa.BigInteger(), nullable=False),
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("charger_token_id", sa.BigInteger(), nullable=False),
        sa.Column("vehicle_id", sa.BigInteger(), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("stopped_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("meter_start_wh", sa.BigInteger(), nullable=False),
        sa.Column("meter_stop_wh", sa.BigInteger(), nullable=False),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("asset", sa.String(length=42), nullable=False),
        sa.Column("amount", sa.String(length=80), nullable=False),
        sa.Column("leaf", sa.String(length=66), nullable=False),
        sa.Column("event_hash", sa.String(length=66), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("session_id"),
    )
    with op.batch_alter_table("session_log_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_log_records_batch_id"), ["batch_id"], unique=False)

    op.create_table(
        "anchor_batches",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("root", sa.String(length=66), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("raw_tx", sa.Text(), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("first_seq"),
        sa.UniqueConstraint("last_seq"),
        sa.UniqueConstraint("tx_hash"),
    )
    with op.batch_alter_table("anchor_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_anchor_batches_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("anchor_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_anchor_batches_status"))
    op.drop_table("anchor_batches")
    with op.batch_alter_table("session_log_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_log_records_batch_id"))
    op.drop_table("session_log_records")
    op.drop_table("session_log_counters")
    op.drop_table("session_log_heads")
    op.drop_table("session_log_events")
