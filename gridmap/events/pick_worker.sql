-- The worker for each grid of ``grid`` (a relation with a text column ``code`` that the
-- caller defines in a WITH clause: the one grid of a new event, or every grid events moved
-- to in a re-assignment), one row per grid: an on-duty full-/part-time worker of the grid
-- (full-time first, then by code), else the community's grid leader (on duty first).
SELECT
    grid.code AS grid_code,
    duty.code AS worker_code, duty.name AS worker_name,
    leader.code AS leader_code, leader.name AS leader_name
FROM grid
LEFT JOIN LATERAL (
    SELECT w.code, w.name
    FROM worker_assignments a JOIN workers w ON w.id = a.worker_id
    WHERE a.grid_code = grid.code AND w.on_duty AND w.role IN ('full_time', 'part_time')
    ORDER BY (w.role = 'part_time'), w.code
    LIMIT 1
) duty ON true
LEFT JOIN LATERAL (
    SELECT w.code, w.name
    FROM areas g
    JOIN worker_assignments a ON a.grid_code = g.code
    JOIN workers w ON w.id = a.worker_id
    WHERE duty.code IS NULL
      AND g.level = 'grid' AND g.parent_code = substr(grid.code, 1, 12)
      AND w.role = 'grid_leader'
    ORDER BY w.on_duty DESC, w.code
    LIMIT 1
) leader ON true
