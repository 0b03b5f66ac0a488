-- Building footprints. No address: households and residents stay out of the map.
-- Parameters: z, x, y, layer, extent, buffer, margin, tolerance, cap.
WITH bounds AS (
  SELECT ST_TileEnvelope(:z, :x, :y) AS env,
         -- The tile with its margin, in lon/lat (migration 0014): the same filter
         -- as in 3857, served by the one spatial index (on geom).
         gridmap_tile_bounds_4326(:z, :x, :y, :margin) AS search
),
features AS MATERIALIZED (
  SELECT ST_AsMVTGeom(
           CASE WHEN :tolerance > 0 THEN ST_Simplify(b.geom_3857, :tolerance, true)
                ELSE b.geom_3857 END,
           bounds.env, :extent, :buffer, true) AS geom,
         b.code, b.use, b.floors, b.grid_code
  FROM buildings b, bounds
  WHERE b.geom && bounds.search
    AND (CAST(:scopes AS text[]) IS NULL OR b.grid_code LIKE ANY(CAST(:scopes AS text[])))
  ORDER BY b.code
),
capped AS (SELECT * FROM features WHERE geom IS NOT NULL LIMIT :cap)
SELECT ST_AsMVT(capped.*, :layer, :extent, 'geom') FROM capped
