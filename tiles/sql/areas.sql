-- Districts, streets, communities: areas of one level valid in the active generation.
-- Parameters: z, x, y, level, layer, extent, buffer, margin, tolerance, cap.
WITH bounds AS (
  SELECT ST_TileEnvelope(:z, :x, :y) AS env,
         -- The tile with its margin, in lon/lat (migration 0014): the same filter
         -- as in 3857, served by the one spatial index (on geom).
         gridmap_tile_bounds_4326(:z, :x, :y, :margin) AS search
),
features AS MATERIALIZED (
  SELECT ST_AsMVTGeom(
           CASE WHEN :tolerance > 0 THEN ST_Simplify(a.geom_3857, :tolerance, true)
                ELSE a.geom_3857 END,
           bounds.env, :extent, :buffer, true) AS geom,
         a.code, a.name, a.level, a.parent_code
  FROM areas a, bounds
  WHERE a.level = :level
    AND a.geom && bounds.search
    AND a.generation_low <= (SELECT id FROM generations WHERE active)
    AND (a.generation_high IS NULL
         OR a.generation_high >= (SELECT id FROM generations WHERE active))
    AND (CAST(:scopes AS text[]) IS NULL OR a.code LIKE ANY(CAST(:scopes AS text[])))
  ORDER BY a.code
),
capped AS (SELECT * FROM features WHERE geom IS NOT NULL LIMIT :cap)
SELECT ST_AsMVT(capped.*, :layer, :extent, 'geom') FROM capped
