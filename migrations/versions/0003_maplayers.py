"""Map layers: data versions for the tile cache, a Web Mercator copy of facility points.

``layer_versions`` holds one counter per map layer; ``layer_changes`` remembers which
version changed which area (NULL bbox: everything). Statement-level triggers bump the
counters when areas, generations, buildings or facilities change, and other modules call
``gridmap_invalidate_layers`` (through :func:`gridmap.layers.invalidate`) for changes the
triggers cannot see (e.g. events). Tile caches compare their entries' versions with these.

Revision ID: 0003_maplayers
Revises: 0004_imports
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0003_maplayers"
down_revision = "0004_imports"
branch_labels = None
depends_on = None

AREA_LAYERS = "'districts', 'streets', 'communities', 'grids'"
TRIGGERS = {
    # table: layers its changes make stale
    "generations": AREA_LAYERS,
    "areas": AREA_LAYERS,
    "buildings": "'buildings'",
    "facilities": "'facilities'",
}


def upgrade() -> None:
    op.create_table(
        "layer_versions",
        sa.Column("layer", sa.String(32), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "layer_changes",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("layer", sa.String(32), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("bbox", Geometry("POLYGON", 3857, spatial_index=False)),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_layer_changes_layer_version", "layer_changes", ["layer", "version"])
    op.execute(
        """
        CREATE FUNCTION gridmap_invalidate_layers(p_layers text[], p_bbox geometry DEFAULT NULL)
        RETURNS void LANGUAGE sql AS $$
          INSERT INTO layer_versions (layer, version, changed_at)
          SELECT DISTINCT l, 2, now() FROM unnest(p_layers) AS l
          ON CONFLICT (layer) DO UPDATE
            SET version = layer_versions.version + 1, changed_at = now();
          INSERT INTO layer_changes (layer, version, bbox)
          SELECT layer, version, p_bbox FROM layer_versions WHERE layer = ANY (p_layers);
          DELETE FROM layer_changes c USING layer_versions v
          WHERE c.layer = v.layer AND v.layer = ANY (p_layers) AND c.version < v.version - 1000;
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION gridmap_layers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM gridmap_invalidate_layers(TG_ARGV::text[], NULL);
          RETURN NULL;
        END
        $$
        """
    )
    for table, layers in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER tr_{table}_layers_changed "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION gridmap_layers_changed({layers})"
        )
    op.execute(
        "INSERT INTO layer_versions (layer, version) VALUES "
        "('districts', 1), ('streets', 1), ('communities', 1), ('grids', 1), "
        "('buildings', 1), ('facilities', 1), ('events', 1)"
    )
    # ST_Transform is IMMUTABLE, so the 3857 copy can be a stored generated column: every
    # writer (COPY, ORM, other modules) keeps it right without knowing about it.
    op.execute(
        "ALTER TABLE facilities ADD COLUMN geom_3857 geometry(Point, 3857) "
        "GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED"
    )
    op.create_index(
        "ix_facilities_geom_3857", "facilities", ["geom_3857"], postgresql_using="gist"
    )
    # Area search by name (GET /api/v1/areas?q=): a trigram index would need pg_trgm;
    # areas number ~80k at Chongqing scale, where a sequential ILIKE scan takes ~20 ms.


def downgrade() -> None:
    op.drop_index("ix_facilities_geom_3857", table_name="facilities")
    op.drop_column("facilities", "geom_3857")
    for table in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS tr_{table}_layers_changed ON {table}")
    op.execute("DROP FUNCTION IF EXISTS gridmap_layers_changed()")
    op.execute("DROP FUNCTION IF EXISTS gridmap_invalidate_layers(text[], geometry)")
    op.drop_index("ix_layer_changes_layer_version", table_name="layer_changes")
    op.drop_table("layer_changes")
    op.drop_table("layer_versions")
