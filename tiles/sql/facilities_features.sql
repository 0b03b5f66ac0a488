-- OGC API – Features items of facilities (components, 部件).
-- Parameters: id (NULL: any), has_bbox, w, s, e, n (EPSG:4326), limit, offset.
SELECT f.code AS id,
       json_build_object('code', f.code, 'major_code', f.major_code,
                         'class', f.major_code || f.minor_code, 'name', f.name,
                         'state', f.state, 'grid_code', f.grid_code) AS properties,
       ST_AsGeoJSON(f.geom, 7) AS geometry,
       count(*) OVER () AS matched
FROM facilities f
WHERE (CAST(:id AS text) IS NULL OR f.code = CAST(:id AS text))
  AND (CAST(:scopes AS text[]) IS NULL OR f.grid_code LIKE ANY(CAST(:scopes AS text[])))
  AND (NOT CAST(:has_bbox AS boolean)
       OR f.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326))
ORDER BY f.code
LIMIT :limit OFFSET :offset
