-- The earliest open, unlinked event of a category within its radius and time window.
-- The geometry ST_DWithin (a radius in degrees no smaller than :radius_m anywhere near
-- the point) lets the planner use the GiST index on events.geom; the geography
-- ST_DWithin is the exact test in metres.
SELECT *
FROM events
WHERE category_code = :category
  AND status <> ALL (CAST(:closed AS text[]))
  AND duplicate_of IS NULL
  AND created_at >= :since AND created_at <= :now
  AND ST_DWithin(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :radius_deg)
  AND ST_DWithin(CAST(geom AS geography),
                 CAST(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS geography), :radius_m)
ORDER BY created_at, id
LIMIT 1
