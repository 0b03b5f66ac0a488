-- Facilities (components, 部件) as points with their class.
-- Parameters: z, x, y, layer, extent, buffer, margin, tolerance (unused), cap.
WITH bounds AS (
  SELECT ST_TileEnvelope(:z, :x, :y) AS env,
         -- The tile with its margin, in lon/lat (migration 0014): the same filter
         -- as in 3857, served by the one spatial index (on geom).
         gridmap_tile_bounds_4326(:z, :x, :y, :margin) AS search
),
features AS MATERIALIZED (
  SELECT ST_AsMVTGeom(f.geom_3857, bounds.env, :extent, :buffer, true) AS geom,
         f.code, f.major_code, f.major_code || f.minor_code AS class, f.name, f.state,
         f.grid_code
  FROM facilities f, bounds
  WHERE f.geom && bounds.search
    AND (CAST(:scopes AS text[]) IS NULL OR f.grid_code LIKE ANY(CAST(:scopes AS text[])))
    AND CAST(:tolerance AS float8) >= 0
  ORDER BY f.code
),
capped AS (SELECT * FROM features WHERE geom IS NOT NULL LIMIT :cap)
SELECT ST_AsMVT(capped.*, :layer, :extent, 'geom') FROM capped
