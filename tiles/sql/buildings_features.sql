-- OGC API – Features items of buildings (no address: no personal data on the map).
-- Parameters: id (NULL: any), has_bbox, w, s, e, n (EPSG:4326), limit, offset.
SELECT b.code AS id,
       json_build_object('code', b.code, 'use', b.use, 'floors', b.floors,
                         'grid_code', b.grid_code) AS properties,
       ST_AsGeoJSON(b.geom, 7) AS geometry,
       count(*) OVER () AS matched
FROM buildings b
WHERE (CAST(:id AS text) IS NULL OR b.code = CAST(:id AS text))
  AND (CAST(:scopes AS text[]) IS NULL OR b.grid_code LIKE ANY(CAST(:scopes AS text[])))
  AND (NOT CAST(:has_bbox AS boolean)
       OR b.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326))
ORDER BY b.code
LIMIT :limit OFFSET :offset
