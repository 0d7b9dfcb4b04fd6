"""meter data verification: registered meter keys, the check of each reading, each session's outcome

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

READING_COLUMNS = (
    ("verification", 16),
    ("verification_detail", 255),
    ("ocmf_pagination", 24),
    ("ocmf_tx", 8),
    ("meter_serial", 64),
    ("gateway_serial", 64),
)
SESSION_COLUMNS = (("meter_data", 16), ("meter_data_detail", 255))


def upgrade() -> None:
    op.create_table(
        "meter_keys",
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("curve", sa.String(length=32), nullable=True),
        sa.Column("signing", sa.String(length=16), nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("charger_id"),
    )
    with op.batch_alter_table("meter_values", schema=None) as batch_op:
        for name, length in READING_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=True))
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        for name, length in SESSION_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        for name, _ in reversed(SESSION_COLUMNS):
            batch_op.drop_column(name)
    with op.batch_alter_table("meter_values", schema=None) as batch_op:
        for name, _ in reversed(READING_COLUMNS):
            batch_op.drop_column(name)
    op.drop_table("meter_keys")
