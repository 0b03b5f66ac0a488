-- OGC API – Features items of open events (neither closed nor rejected) as points, with
-- the same properties as the events tile layer (no reporter data) and the same light.
-- Parameters: id (NULL: any), has_bbox, w, s, e, n (EPSG:4326), limit, offset, scopes.
SELECT CAST(e.id AS text) AS id,
       json_build_object('id', e.id, 'category', e.category_code, 'status', e.status,
                         'priority', e.priority,
                         'traffic_light', gridmap_traffic_light(
                             e.deadline, e.accepted_at, e.yellow_at,
                             COALESCE(e.resolved_at, now()))) AS properties,
       ST_AsGeoJSON(e.geom, 7) AS geometry,
       count(*) OVER () AS matched
FROM events e
WHERE e.status NOT IN ('closed', 'rejected')
  AND (CAST(:id AS text) IS NULL
       OR e.id = CASE WHEN CAST(:id AS text) ~ '^[0-9]{1,18}$'
                      THEN CAST(CAST(:id AS text) AS bigint) END)
  AND (CAST(:scopes AS text[]) IS NULL OR e.grid_code LIKE ANY(CAST(:scopes AS text[])))
  AND (NOT CAST(:has_bbox AS boolean)
       OR e.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326))
ORDER BY e.id
LIMIT :limit OFFSET :offset
