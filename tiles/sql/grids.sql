-- Grids valid in the active generation, each with open_events: its events that are
-- neither closed nor rejected (counted only for the grids in the tile, through the
-- partial index ix_events_open_grid).
-- Parameters: z, x, y, layer, extent, buffer, margin, tolerance, cap.
WITH bounds AS (
  SELECT ST_TileEnvelope(:z, :x, :y) AS env,
         ST_TileEnvelope(:z, :x, :y, margin => :margin) AS search
),
features AS MATERIALIZED (
  SELECT ST_AsMVTGeom(
           CASE WHEN :tolerance > 0 THEN ST_Simplify(a.geom_3857, :tolerance, true)
                ELSE a.geom_3857 END,
           bounds.env, :extent, :buffer, true) AS geom,
         a.code, a.name, a.parent_code
  FROM areas a, bounds
  WHERE a.level = 'grid'
    AND a.geom_3857 && bounds.search
    AND a.generation_low <= (SELECT id FROM generations WHERE active)
    AND (a.generation_high IS NULL
         OR a.generation_high >= (SELECT id FROM generations WHERE active))
  ORDER BY a.code
),
capped AS (SELECT * FROM features WHERE geom IS NOT NULL LIMIT :cap),
open_counts AS (
  SELECT e.grid_code, count(*) AS open_events
  FROM events e
  WHERE e.grid_code IN (SELECT code FROM capped)
    AND e.status NOT IN ('closed', 'rejected')
  GROUP BY e.grid_code
),
counted AS (
  SELECT c.geom, c.code, c.name, c.parent_code, COALESCE(n.open_events, 0) AS open_events
  FROM capped c LEFT JOIN open_counts n ON n.grid_code = c.code
)
SELECT ST_AsMVT(counted.*, :layer, :extent, 'geom') FROM counted
