"""Areas no longer carry a digest of their geometry.

``areas.geom_digest`` (migration 0011) was a stored generated column: the MD5 of each
area's oriented WKB, so that an import could tell unchanged areas without fetching
them. Computing it cost every written row a copy, re-orientation and hash of its
geometry inside the insert. Imports now fetch the level's geometries as WKB beside
reading the file (another process does that work) and compare bytes (a shapefile's
records are WKB's coordinates already), so the column goes.

Revision ID: 0015_no_geom_digest
Revises: 0014_one_spatial_index
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_no_geom_digest"
down_revision = "0014_one_spatial_index"
branch_labels = None
depends_on = None

# As migration 0011 defined it (migrations are frozen: not imported from there).
GEOM_DIGEST = (
    "decode(md5(ST_AsBinary(ST_ForcePolygonCW(CASE WHEN ST_NumGeometries(geom) = 1 "
    "THEN ST_GeometryN(geom, 1) ELSE geom END), 'NDR')), 'hex')"
)


def upgrade() -> None:
    op.drop_column("areas", "geom_digest")


def downgrade() -> None:
    op.add_column(
        "areas",
        sa.Column("geom_digest", sa.LargeBinary, sa.Computed(GEOM_DIGEST, persisted=True)),
    )
