-- Open events (neither closed nor rejected) as points, most urgent first when capped.
-- Only what the map needs: id, category, status, priority and the traffic light — no
-- reporter, address, description or other personal data.
-- traffic_light (SQL function gridmap_traffic_light, migration 0010_event_light): red past the
-- deadline, yellow from yellow_at (80% of the time limit used, in working hours:
-- gridmap.events.deadlines.yellow_from, stored when the event is accepted), else green;
-- absent until the event is accepted. The same rule as
-- gridmap.events.deadlines.traffic_light (GET /api/v1/events/{id}).
-- Area scope as everywhere else: a scoped caller sees the events of their grids only
-- (none outside every grid).
-- Parameters: z, x, y, layer, extent, buffer, margin, tolerance (unused), cap, scopes.
WITH bounds AS (
  SELECT ST_TileEnvelope(:z, :x, :y) AS env,
         gridmap_tile_bounds_4326(:z, :x, :y, :margin) AS search
),
features AS MATERIALIZED (
  SELECT ST_AsMVTGeom(ST_Transform(e.geom, 3857), bounds.env, :extent, :buffer, true) AS geom,
         e.id, e.category_code AS category, e.status, e.priority,
         gridmap_traffic_light(e.deadline, e.accepted_at, e.yellow_at,
                               COALESCE(e.resolved_at, now())) AS traffic_light
  FROM events e, bounds
  WHERE e.geom && bounds.search
    AND e.status NOT IN ('closed', 'rejected')
    AND (CAST(:scopes AS text[]) IS NULL OR e.grid_code LIKE ANY(CAST(:scopes AS text[])))
    AND CAST(:tolerance AS float8) >= 0
  ORDER BY CASE e.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2
                           ELSE 3 END, e.id DESC
),
capped AS (SELECT * FROM features WHERE geom IS NOT NULL LIMIT :cap)
SELECT ST_AsMVT(capped.*, :layer, :extent, 'geom') FROM capped
