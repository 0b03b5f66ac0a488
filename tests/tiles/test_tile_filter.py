"""Migration 0014: a tile's envelope in EPSG:4326 (``gridmap_tile_bounds_4326``) selects
the rows its EPSG:3857 envelope did, for every table the tiles draw, on every tile of
z0-z3 and on the tiles over the sample city at z8-z15 — up to rows on the margin's
edge, which draw nothing."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from tiles.layers import BUFFER, EXTENT

# Every tile of the world at z0-z3 (the antimeridian's included), and every tile over
# the sample city (and one ring around it) at the zooms the layers start drawing.
ZOOMS = (8, 10, 12, 14, 15)
_DIFFERENCE = """
WITH box AS (
  SELECT ST_Transform(ST_SetSRID(ST_Extent(geom), 4326), 3857) AS b FROM {table}
), tiles AS (
  SELECT z, x, y
  FROM box, unnest(%(zooms)s::int[]) AS z,
       LATERAL (SELECT 2 * 20037508.342789244 / (1 << z) AS size) s,
       generate_series(floor((ST_XMin(b) + 20037508.342789244) / size)::int - 1,
                       floor((ST_XMax(b) + 20037508.342789244) / size)::int + 1) AS x,
       generate_series(floor((20037508.342789244 - ST_YMax(b)) / size)::int - 1,
                       floor((20037508.342789244 - ST_YMin(b)) / size)::int + 1) AS y
  UNION
  SELECT z, x, y FROM generate_series(0, 3) AS z,
       LATERAL generate_series(0, (1 << z) - 1) AS x,
       LATERAL generate_series(0, (1 << z) - 1) AS y
), mercator AS (
  SELECT t.z, t.x, t.y, r.id FROM tiles t
  JOIN {table} r ON r.geom_3857 && ST_TileEnvelope(t.z, t.x, t.y, margin => %(margin)s)
), lonlat AS (
  SELECT t.z, t.x, t.y, r.id FROM tiles t
  JOIN {table} r
    ON r.geom && gridmap_tile_bounds_4326(t.z, t.x, t.y, %(margin)s)
), differ AS (
  (SELECT * FROM mercator EXCEPT SELECT * FROM lonlat)
  UNION ALL (SELECT * FROM lonlat EXCEPT SELECT * FROM mercator)
)
SELECT (SELECT count(*) FROM mercator), (SELECT count(*) FROM differ),
       (SELECT count(*) FROM differ d JOIN {table} r ON r.id = d.id
        WHERE ST_AsMVTGeom(r.geom_3857, ST_TileEnvelope(d.z, d.x, d.y), %(extent)s,
                           %(buffer)s, true) IS NOT NULL)
"""


@pytest.mark.parametrize("table", ["areas", "buildings", "facilities"])
def test_lonlat_envelope_selects_what_the_mercator_one_did(
    city_factory: Callable[[], str], table: str
) -> None:
    with psycopg.connect(city_factory()) as conn:
        # The comparison side gets an index for this test only (rolled back).
        conn.execute(f"CREATE INDEX ON {table} USING gist (geom_3857)")  # type: ignore[arg-type]
        row = conn.execute(_DIFFERENCE.format(table=table),  # type: ignore[arg-type]
                           {"zooms": list(ZOOMS), "margin": BUFFER / EXTENT,
                            "extent": EXTENT, "buffer": BUFFER}).fetchone()
        conn.rollback()
    assert row is not None
    selected, differ, drawn = row
    assert selected > 1000, "the tiles cover the city"
    # Both filters compare float4 bounding boxes (rounded outward, ~1 m here), so a row
    # within that distance of the margin's edge may be picked by one only; such a row
    # lies on or outside the buffered tile and draws nothing: the tiles are the same.
    assert drawn == 0, f"{drawn} of {differ} rows picked by one filter only are drawn"
