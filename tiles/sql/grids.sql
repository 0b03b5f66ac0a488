-- Grids valid in the active generation, each with open_events: its events that are
-- neither closed nor rejected (counted only for the grids in the tile).
-- Parameters: z, x, y, layer, extent, buffer, margin, tolerance, cap.
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
         a.code, a.name, a.parent_code
  FROM areas a, bounds
  WHERE a.level = 'grid'
    AND a.geom && bounds.search
    AND a.generation_low <= (SELECT id FROM generations WHERE active)
    AND (a.generation_high IS NULL
         OR a.generation_high >= (SELECT id FROM generations WHERE active))
    AND (CAST(:scopes AS text[]) IS NULL OR a.code LIKE ANY(CAST(:scopes AS text[])))
  ORDER BY a.code
),
capped AS (SELECT * FROM features WHERE geom IS NOT NULL LIMIT :cap),
counted AS (
  -- One index probe per grid (partial index ix_events_open_grid). A LEFT JOIN on a
  -- GROUP BY aggregate was 40x slower at z12 on 65k grids / 260k events: the planner
  -- aggregated far more events than the tile's grids own (benchmarks/bench_mapevents.py).
  SELECT c.geom, c.code, c.name, c.parent_code, n.open_events
  FROM capped c
  CROSS JOIN LATERAL (
    SELECT count(*) AS open_events FROM events e
    WHERE e.grid_code = c.code AND e.status NOT IN ('closed', 'rejected')
  ) AS n
)
SELECT ST_AsMVT(counted.*, :layer, :extent, 'geom') FROM counted
