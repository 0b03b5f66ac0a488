"""Generations remember which area levels passed the import's checks; areas carry a
digest of their geometry.

``generations.checked_levels`` lists the levels whose areas, as valid in that
generation, were verified by the checked import path to form a clean coverage (no
invalid edges between siblings) lying inside their parents and leaving no parent with
more than 0.01 m² uncovered. The next import of such a level re-runs the
sibling-overlap, containment and gap checks only around the areas it changes.
Generations loaded any other way (``gridmap sample``) have none: their next import
gets the full checks.

Revision ID: 0011_checked_levels
Revises: 0010_event_light
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0011_checked_levels"
down_revision = "0010_event_light"
branch_labels = None
depends_on = None


GEOM_DIGEST = (
    "decode(md5(ST_AsBinary(ST_ForcePolygonCW(CASE WHEN ST_NumGeometries(geom) = 1 "
    "THEN ST_GeometryN(geom, 1) ELSE geom END), 'NDR')), 'hex')"
)


def upgrade() -> None:
    op.add_column(
        "generations",
        sa.Column("checked_levels", ARRAY(sa.String(12)), nullable=False,
                  server_default=sa.text("'{}'::varchar[]")),
    )
    op.add_column(
        "areas",
        sa.Column("geom_digest", sa.LargeBinary, sa.Computed(GEOM_DIGEST, persisted=True)),
    )


def downgrade() -> None:
    op.drop_column("areas", "geom_digest")
    op.drop_column("generations", "checked_levels")
