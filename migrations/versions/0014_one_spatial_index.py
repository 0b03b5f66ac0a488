"""One spatial index per table: tiles filter on ``geom`` (EPSG:4326) too.

Areas, buildings and facilities kept two GiST indexes, on ``geom`` (lookups, imports)
and on ``geom_3857`` (the tile queries' bounding-box filter). Web Mercator maps
axis-parallel rectangles onto axis-parallel rectangles, so a tile's envelope
transformed to EPSG:4326 selects exactly the rows its 3857 envelope did: the tile
queries now filter ``geom && ST_Transform(envelope, 4326)`` (as the events tiles
always did) and the 3857 indexes go. ``geom_3857`` stays: it is what the tiles draw.
Each row written maintains one GiST index fewer (``benchmarks/RESULTS.md``).

Revision ID: 0014_one_spatial_index
Revises: 0013_code_ranges_per_statement
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0014_one_spatial_index"
down_revision = "0013_code_ranges_per_statement"
branch_labels = None
depends_on = None

TABLES = ("areas", "buildings", "facilities")


def upgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_geom_3857", table_name=table)


def downgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_geom_3857", table, ["geom_3857"], postgresql_using="gist")
