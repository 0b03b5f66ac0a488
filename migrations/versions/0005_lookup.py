"""Lookup: SQL function gridmap_lookup() and change notifications for the in-memory index.

Revision ID: 0005_lookup
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005_lookup"
down_revision = "0001"
branch_labels = None
depends_on = None

# The same rule as every other path: ST_Covers, lowest code on shared edges/vertices.
# A point without SRID is taken as EPSG:4326; others are transformed to it.
LOOKUP_FUNCTION = """
CREATE OR REPLACE FUNCTION gridmap_lookup(pt geometry, gen integer DEFAULT NULL)
RETURNS varchar(15)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  WITH g AS (
    SELECT coalesce(gen, (SELECT id FROM generations WHERE active)) AS id
  ), p AS (
    SELECT CASE WHEN ST_SRID(pt) IN (0, 4326) THEN ST_SetSRID(pt, 4326)
                ELSE ST_Transform(pt, 4326) END AS geom
  )
  SELECT a.code FROM areas a, g, p
  WHERE a.level = 'grid'
    AND a.generation_low <= g.id
    AND (a.generation_high IS NULL OR a.generation_high >= g.id)
    AND ST_Covers(a.geom, p.geom)
  ORDER BY a.code
  LIMIT 1
$$;
"""

NOTIFY_FUNCTIONS = """
CREATE OR REPLACE FUNCTION gridmap_notify_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.active AND (TG_OP = 'INSERT' OR NOT OLD.active) THEN
    PERFORM pg_notify('gridmap_generation', NEW.id::text);
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION gridmap_notify_workers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('gridmap_workers', TG_TABLE_NAME);
  RETURN NULL;
END $$;

CREATE TRIGGER generations_notify AFTER INSERT OR UPDATE OF active ON generations
  FOR EACH ROW EXECUTE FUNCTION gridmap_notify_generation();
CREATE TRIGGER workers_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON workers
  FOR EACH STATEMENT EXECUTE FUNCTION gridmap_notify_workers();
CREATE TRIGGER worker_assignments_notify
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON worker_assignments
  FOR EACH STATEMENT EXECUTE FUNCTION gridmap_notify_workers();
"""


def upgrade() -> None:
    op.execute(LOOKUP_FUNCTION)
    op.execute(NOTIFY_FUNCTIONS)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS worker_assignments_notify ON worker_assignments")
    op.execute("DROP TRIGGER IF EXISTS workers_notify ON workers")
    op.execute("DROP TRIGGER IF EXISTS generations_notify ON generations")
    op.execute("DROP FUNCTION IF EXISTS gridmap_notify_workers()")
    op.execute("DROP FUNCTION IF EXISTS gridmap_notify_generation()")
    op.execute("DROP FUNCTION IF EXISTS gridmap_lookup(geometry, integer)")
