"""web actions: signed actions waiting for their signature, in the store

The web app's signed actions (top-up, tariff, lease, stop: electra.web.actions) were kept in the
API process's memory, so a restart forgot them and a second API process did not know them. In a
table, an action issued by one process can be confirmed through another, survives a restart for
its five minutes, and is still done at most once (taking it deletes its row).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_actions",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("nonce"),
    )
    op.create_index("ix_web_actions_expires_at", "web_actions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_web_actions_expires_at", table_name="web_actions")
    op.drop_table("web_actions")
