-- One round trip for any number of reports: the event rows (:events, a JSON array of
-- objects, one per report, ``n`` its position) and their audit rows (:audit: report,
-- assign, and link_duplicate or accept + dispatch, matched to their event by its token)
-- in the order given. JSON rather than one array per column: psycopg dumps array
-- elements one by one in Python, which cost more CPU than the rest of the intake.
-- One statement, so the map-invalidation trigger of events runs once for all of them.
-- A repeated idempotency key inserts nothing and returns no row (the caller then reads
-- the winner).
WITH r AS (
    SELECT *
    FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS r(
        n integer, source text, category_code text, affair_class text, priority text,
        status text, lon float8, lat float8, address text, description text,
        reporter_name text, reporter_phone text, reporter_email text, facility_code text,
        device_id text, household_id integer, media_urls jsonb, grid_code text,
        generation integer, worker_code text, department_code text, handler_level text,
        assignment_reason text, flagged boolean, queue text, escalation_level text,
        deadline timestamptz, rework_count integer, duplicate_of bigint,
        idempotency_key text, reported_by text, token text, created_at timestamptz,
        updated_at timestamptz, assigned_at timestamptz, accepted_at timestamptz,
        yellow_at timestamptz)
),
e AS (
    INSERT INTO events (
        source, category_code, affair_class, priority, status, lon, lat, geom, address,
        description, reporter_name, reporter_phone, reporter_email, facility_code, device_id,
        household_id, media_urls, grid_code, generation, worker_code, department_code,
        handler_level, assignment_reason, flagged, queue, escalation_level, deadline,
        rework_count, duplicate_of, idempotency_key, reported_by, token, created_at,
        updated_at, assigned_at, accepted_at, yellow_at)
    SELECT
        source, category_code, affair_class, priority, status, lon, lat,
        ST_SetSRID(ST_MakePoint(lon, lat), 4326), address,
        description, reporter_name, reporter_phone, reporter_email, facility_code, device_id,
        household_id, media_urls, grid_code, generation, worker_code, department_code,
        handler_level, assignment_reason, flagged, queue, escalation_level, deadline,
        rework_count, duplicate_of, idempotency_key, reported_by, token, created_at,
        updated_at, assigned_at, accepted_at, yellow_at
    FROM r
    ORDER BY n
    ON CONFLICT (reported_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING token, id
),
t AS (
    INSERT INTO event_transitions (event_id, action, from_status, to_status, actor, role,
                                   note, at)
    SELECT e.id, t.action, t.from_status, t.to_status, t.actor, t.role, t.note, t.at
    FROM jsonb_to_recordset(CAST(:audit AS jsonb)) AS t(
             n integer, token text, action text, from_status text, to_status text,
             actor text, role text, note text, at timestamptz)
    JOIN e ON e.token = t.token
    ORDER BY t.n
)
SELECT token, id FROM e
