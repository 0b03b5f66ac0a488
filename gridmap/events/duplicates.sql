-- For each report (:reports, a JSON array of objects, ``n`` its position): the earliest
-- open, unlinked event of its category within its radius and time window, if any. The
-- geometry ST_DWithin (a radius in degrees no smaller than radius_m anywhere near the
-- point) lets the planner use the GiST index on events.geom; the geography ST_DWithin is
-- the exact test in metres.
SELECT r.n, d.*
FROM jsonb_to_recordset(CAST(:reports AS jsonb)) AS r(
         n integer, category text, lon float8, lat float8, since timestamptz,
         now timestamptz, radius_deg float8, radius_m float8)
CROSS JOIN LATERAL (
    SELECT *
    FROM events
    WHERE category_code = r.category
      AND status <> ALL (CAST(:closed AS text[]))
      AND duplicate_of IS NULL
      AND created_at >= r.since AND created_at <= r.now
      AND ST_DWithin(geom, ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326), r.radius_deg)
      AND ST_DWithin(CAST(geom AS geography),
                     CAST(ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326) AS geography),
                     r.radius_m)
    ORDER BY created_at, id
    LIMIT 1
) d
