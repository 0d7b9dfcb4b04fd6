"""sites and their grid limits for load balancing; imported OCPI locations

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("limit_w", sa.BigInteger(), nullable=True),
        sa.Column("limit_a", sa.Integer(), nullable=True),
        sa.Column("voltage_v", sa.Integer(), nullable=False),
        sa.Column("min_current_a", sa.Integer(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("site_id"),
    )
    op.create_table(
        "site_chargers",
        sa.Column("charger_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("phases", sa.String(length=8), nullable=False),
        sa.Column("max_power_w", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.site_id"]),
        sa.PrimaryKeyConstraint("charger_id"),
    )
    op.create_index("ix_site_chargers_site_id", "site_chargers", ["site_id"])
    op.create_table(
        "ocpi_locations",
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("party_id", sa.String(length=3), nullable=False),
        sa.Column("location_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("latitude_e6", sa.BigInteger(), nullable=False),
        sa.Column("longitude_e6", sa.BigInteger(), nullable=False),
        sa.Column("connector_types", sa.Integer(), nullable=False),
        sa.Column("max_power_w", sa.BigInteger(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("availability", sa.String(length=16), nullable=False),
        sa.Column("last_updated", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("imported_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("country_code", "party_id", "location_id"),
    )


def downgrade() -> None:
    op.drop_table("ocpi_locations")
    op.drop_index("ix_site_chargers_site_id", table_name="site_chargers")
    op.drop_table("site_chargers")
    op.drop_table("sites")
