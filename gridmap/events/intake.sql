-- One round trip per report: the event row and its audit rows (report, assign, and
-- link_duplicate or accept + dispatch), in the order given. A repeated idempotency key
-- inserts nothing and returns no row (the caller then reads the winner).
WITH e AS (
    INSERT INTO events (
        source, category_code, affair_class, priority, status, lon, lat, geom, address,
        description, reporter_name, reporter_phone, reporter_email, facility_code, device_id,
        household_id, media_urls, grid_code, generation, worker_code, department_code,
        handler_level, assignment_reason, flagged, queue, escalation_level, deadline,
        rework_count, duplicate_of, idempotency_key, reported_by, token, created_at, updated_at,
        assigned_at, accepted_at, yellow_at)
    VALUES (
        :source, :category_code, :affair_class, :priority, :status, :lon, :lat,
        ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :address,
        :description, :reporter_name, :reporter_phone, :reporter_email, :facility_code,
        :device_id, :household_id, CAST(:media_urls AS jsonb), :grid_code, :generation,
        :worker_code, :department_code, :handler_level, :assignment_reason, :flagged, :queue,
        :escalation_level, :deadline, :rework_count, :duplicate_of, :idempotency_key, :reported_by,
        :token,
        :created_at, :updated_at, :assigned_at, :accepted_at, :yellow_at)
    ON CONFLICT (reported_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id
)
INSERT INTO event_transitions (event_id, action, from_status, to_status, actor, role, note, at)
SELECT e.id, t.action, t.from_status, t.to_status, t.actor, t.role, t.note, :created_at
FROM e,
     unnest(CAST(:t_action AS text[]), CAST(:t_from AS text[]), CAST(:t_to AS text[]),
            CAST(:t_actor AS text[]), CAST(:t_role AS text[]), CAST(:t_note AS text[]))
         WITH ORDINALITY AS t(action, from_status, to_status, actor, role, note, n)
ORDER BY t.n
RETURNING event_id
