"""intelligence: maintenance tickets and published price quotes

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LIVE = sa.text("status != 'closed'")


def upgrade() -> None:
    op.create_table(
        "maintenance_tickets",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("risk_permille", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("last_risk_permille", sa.Integer(), nullable=False),
        sa.Column("last_scored_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("opened_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("scheduled_for_ms", sa.BigInteger(), nullable=True),
        sa.Column("closed_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("resolution", sa.String(length=255), nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("maintenance_tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_maintenance_tickets_charger_id"), ["charger_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_maintenance_tickets_status"), ["status"], unique=False)
        batch_op.create_index(
            "uq_maintenance_ticket_live", ["charger_id"], unique=True, sqlite_where=LIVE, postgresql_where=LIVE
        )
    op.create_table(
        "price_quotes",
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("valid_from_ms", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("valid_until_ms", sa.BigInteger(), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("energy_price_per_wh", sa.String(length=80), nullable=False),
        sa.Column("multiplier_bps", sa.Integer(), nullable=False),
        sa.Column("quote", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("charger_id", "valid_from_ms"),
    )


def downgrade() -> None:
    op.drop_table("price_quotes")
    with op.batch_alter_table("maintenance_tickets", schema=None) as batch_op:
        batch_op.drop_index("uq_maintenance_ticket_live")
        batch_op.drop_index(batch_op.f("ix_maintenance_tickets_status"))
        batch_op.drop_index(batch_op.f("ix_maintenance_tickets_charger_id"))
    op.drop_table("maintenance_tickets")
