"""reorgs: the block hash of every confirmed settlement batch and anchored batch

A transaction that was mined can leave the chain when the chain reorganizes. The workers keep the
hash of the block that held each of their transactions, and look again while that block is recent:
a receipt that is gone, or that now names another block, means the outcome they recorded is gone
too (see electra.chain.txsender.TxSender.still_mined).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("settlement_batches") as batch:
        batch.add_column(sa.Column("block_hash", sa.String(length=66), nullable=True))
    with op.batch_alter_table("anchor_batches") as batch:
        batch.add_column(sa.Column("block_hash", sa.String(length=66), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("anchor_batches") as batch:
        batch.drop_column("block_hash")
    with op.batch_alter_table("settlement_batches") as batch:
        batch.drop_column("block_hash")
