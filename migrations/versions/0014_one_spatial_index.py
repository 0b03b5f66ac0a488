"""One spatial index per table: tiles filter on ``geom`` (EPSG:4326) too.

Areas, buildings and facilities kept two GiST indexes, on ``geom`` (lookups, imports)
and on ``geom_3857`` (the tile queries' bounding-box filter). Web Mercator maps
axis-parallel rectangles onto axis-parallel rectangles, so a tile's envelope
transformed to EPSG:4326 selects the rows its 3857 envelope did (both compare float4
boxes rounded outward: rows on the margin's very edge may differ, and draw nothing).
The tile queries now filter ``geom && gridmap_tile_bounds_4326(...)`` (as the events
tiles did, unclamped) and the 3857 indexes go. ``geom_3857`` stays: the tiles draw it.
Each row written maintains one GiST index fewer (``benchmarks/RESULTS.md``).

``gridmap_tile_bounds_4326`` builds that envelope for every tile query. A tile at the
antimeridian, with its margin, reaches past x = ±20037508 m, where PROJ wraps the
longitude: the transformed box became the rest of the world (at z1 and z2 the eastern
tiles selected nothing in China — the events tiles had this). The envelope is clamped
to the world in x first; the 3857 filter found nothing past it either.

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
WORLD = 20037508.342789244  # half the Web Mercator world's width, m

# One expression, no FROM: PostgreSQL inlines the function into each tile query (a body
# with a FROM clause is planned again on every call: +0.08 ms a tile in bench_tiles).
TILE_BOUNDS = f"""
CREATE FUNCTION gridmap_tile_bounds_4326(z integer, x integer, y integer, margin float8)
RETURNS geometry LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ST_Transform(ST_MakeEnvelope(
    greatest(ST_XMin(ST_TileEnvelope(z, x, y, margin => margin)), -{WORLD}),
    ST_YMin(ST_TileEnvelope(z, x, y, margin => margin)),
    least(ST_XMax(ST_TileEnvelope(z, x, y, margin => margin)), {WORLD}),
    ST_YMax(ST_TileEnvelope(z, x, y, margin => margin)), 3857), 4326)
$$
"""


def upgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_geom_3857", table_name=table)
    op.execute(TILE_BOUNDS)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS gridmap_tile_bounds_4326(integer, integer, integer, "
               "float8)")
    for table in TABLES:
        op.create_index(f"ix_{table}_geom_3857", table, ["geom_3857"], postgresql_using="gist")
