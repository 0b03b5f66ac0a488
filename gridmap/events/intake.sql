-- One round trip for any number of reports: the event rows (arrays, one element per
-- report) and their audit rows (report, assign, and link_duplicate or accept + dispatch),
-- matched to their event by its token and inserted in the order given. One statement,
-- so the map-invalidation trigger of events runs once for all of them. A repeated
-- idempotency key inserts nothing and returns no row (the caller then reads the winner).
WITH r AS (
    SELECT *
    FROM unnest(
        CAST(:source AS text[]), CAST(:category_code AS text[]),
        CAST(:affair_class AS text[]), CAST(:priority AS text[]), CAST(:status AS text[]),
        CAST(:lon AS float8[]), CAST(:lat AS float8[]), CAST(:address AS text[]),
        CAST(:description AS text[]), CAST(:reporter_name AS text[]),
        CAST(:reporter_phone AS text[]), CAST(:reporter_email AS text[]),
        CAST(:facility_code AS text[]), CAST(:device_id AS text[]),
        CAST(:household_id AS integer[]), CAST(:media_urls AS jsonb[]),
        CAST(:grid_code AS text[]), CAST(:generation AS integer[]),
        CAST(:worker_code AS text[]), CAST(:department_code AS text[]),
        CAST(:handler_level AS text[]), CAST(:assignment_reason AS text[]),
        CAST(:flagged AS boolean[]), CAST(:queue AS text[]),
        CAST(:escalation_level AS text[]), CAST(:deadline AS timestamptz[]),
        CAST(:rework_count AS integer[]), CAST(:duplicate_of AS bigint[]),
        CAST(:idempotency_key AS text[]), CAST(:reported_by AS text[]), CAST(:token AS text[]),
        CAST(:created_at AS timestamptz[]), CAST(:updated_at AS timestamptz[]),
        CAST(:assigned_at AS timestamptz[]), CAST(:accepted_at AS timestamptz[]))
        WITH ORDINALITY AS r(
            source, category_code, affair_class, priority, status, lon, lat, address,
            description, reporter_name, reporter_phone, reporter_email, facility_code,
            device_id, household_id, media_urls, grid_code, generation, worker_code,
            department_code, handler_level, assignment_reason, flagged, queue,
            escalation_level, deadline, rework_count, duplicate_of, idempotency_key,
            reported_by, token, created_at, updated_at, assigned_at, accepted_at, n)
),
e AS (
    INSERT INTO events (
        source, category_code, affair_class, priority, status, lon, lat, geom, address,
        description, reporter_name, reporter_phone, reporter_email, facility_code, device_id,
        household_id, media_urls, grid_code, generation, worker_code, department_code,
        handler_level, assignment_reason, flagged, queue, escalation_level, deadline,
        rework_count, duplicate_of, idempotency_key, reported_by, token, created_at,
        updated_at, assigned_at, accepted_at)
    SELECT
        source, category_code, affair_class, priority, status, lon, lat,
        ST_SetSRID(ST_MakePoint(lon, lat), 4326), address,
        description, reporter_name, reporter_phone, reporter_email, facility_code, device_id,
        household_id, media_urls, grid_code, generation, worker_code, department_code,
        handler_level, assignment_reason, flagged, queue, escalation_level, deadline,
        rework_count, duplicate_of, idempotency_key, reported_by, token, created_at,
        updated_at, assigned_at, accepted_at
    FROM r
    ORDER BY n
    ON CONFLICT (reported_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING token, id
),
t AS (
    INSERT INTO event_transitions (event_id, action, from_status, to_status, actor, role,
                                   note, at)
    SELECT e.id, t.action, t.from_status, t.to_status, t.actor, t.role, t.note, t.at
    FROM unnest(CAST(:t_token AS text[]), CAST(:t_action AS text[]),
                CAST(:t_from AS text[]), CAST(:t_to AS text[]), CAST(:t_actor AS text[]),
                CAST(:t_role AS text[]), CAST(:t_note AS text[]),
                CAST(:t_at AS timestamptz[]))
             WITH ORDINALITY AS t(token, action, from_status, to_status, actor, role, note,
                                  at, n)
    JOIN e ON e.token = t.token
    ORDER BY t.n
)
SELECT token, id FROM e
