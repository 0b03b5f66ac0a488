-- Event statistics over the events reported in [:from, :to) under area :code.
-- :key_len groups by area (length of the level's code) or 0 for none; :by_category too.
SELECT
    CASE WHEN :key_len > 0 THEN substr(e.grid_code, 1, :key_len) ELSE CAST(:code AS text) END AS area,
    CASE WHEN :by_category THEN e.category_code ELSE NULL END AS category,
    count(*) AS reported,
    count(e.accepted_at) AS accepted,
    count(*) FILTER (WHERE e.status = 'closed') AS closed,
    count(*) FILTER (WHERE e.status = 'closed' AND e.closed_at <= e.deadline) AS closed_on_time,
    count(*) FILTER (WHERE e.rework_count > 0) AS reworked,
    avg(extract(epoch FROM e.closed_at - e.accepted_at) / 3600.0)
        FILTER (WHERE e.status = 'closed') AS mean_handling_hours,
    count(*) FILTER (
        WHERE e.status IN ('accepted', 'dispatched', 'in_progress') AND e.deadline < :now
    ) AS overdue_now,
    avg(e.satisfaction) AS satisfaction,
    count(e.satisfaction) AS rated
FROM events e
WHERE e.created_at >= :from AND e.created_at < :to
  AND (CAST(:prefix AS text) = '%' OR e.grid_code LIKE :prefix)
GROUP BY 1, 2
ORDER BY 1, 2
