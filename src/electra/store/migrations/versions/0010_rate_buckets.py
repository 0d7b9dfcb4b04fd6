"""api rate limits shared by every API process on the database

The REST API's token buckets (per API key, signed-in address, anonymous IP) in a table, so that N
API processes on one PostgreSQL allow a caller the rate once, not N times
(electra.api.ratelimit.DatabaseRateLimiter).

On PostgreSQL the table is UNLOGGED: a bucket is worth nothing after a crash (the server truncates
the table then, and every caller starts with a full bucket), so it need not be written to the WAL.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    unlogged = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table(
        "api_rate_buckets",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("who", sa.String(length=128), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "who"),
        prefixes=unlogged,
    )
    op.create_index("ix_api_rate_buckets_at_ms", "api_rate_buckets", ["at_ms"])


def downgrade() -> None:
    op.drop_index("ix_api_rate_buckets_at_ms", table_name="api_rate_buckets")
    op.drop_table("api_rate_buckets")
