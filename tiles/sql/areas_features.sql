-- OGC API – Features items of one area level, valid in the active generation.
-- Parameters: level, id (NULL: any), has_bbox, w, s, e, n (EPSG:4326), limit, offset.
WITH gen AS (SELECT id FROM generations WHERE active)
SELECT a.code AS id,
       json_build_object('code', a.code, 'name', a.name, 'level', a.level,
                         'parent_code', a.parent_code) AS properties,
       ST_AsGeoJSON(a.geom, 7) AS geometry,
       count(*) OVER () AS matched
FROM areas a, gen
WHERE a.level = :level
  AND a.generation_low <= gen.id
  AND (a.generation_high IS NULL OR a.generation_high >= gen.id)
  AND (CAST(:id AS text) IS NULL OR a.code = CAST(:id AS text))
  AND (CAST(:scopes AS text[]) IS NULL OR a.code LIKE ANY(CAST(:scopes AS text[])))
  AND (NOT CAST(:has_bbox AS boolean)
       OR a.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326))
ORDER BY a.code
LIMIT :limit OFFSET :offset
