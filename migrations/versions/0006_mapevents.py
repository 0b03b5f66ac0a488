"""Map ↔ events: indexes for open events and tile-cache invalidation by trigger.

Open events (status neither closed nor rejected) get partial indexes: by grid code (the
grids layer counts them per grid) and by location (the ``events`` tile layer). Statement
triggers with transition tables bump ``layer_versions`` for ``events`` (the changed
points) and ``grids`` (the extent of the grids whose open count may change) whenever
events are inserted, deleted or change what the map shows — one invalidation per
statement, so bulk intake does not write one ``layer_changes`` row per event.

Revision ID: 0006_mapevents
Revises: 0007_auth
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0006_mapevents"
down_revision = "0007_auth"
branch_labels = None
depends_on = None

OPEN = "status NOT IN ('closed', 'rejected')"

# Columns whose change alters an event's feature on the map (or its grid's open count).
SHOWN = "status, priority, category_code, grid_code, deadline, accepted_at, resolved_at, geom"

INVALIDATE = """
CREATE FUNCTION gridmap_events_invalidate(changed jsonb) RETURNS void LANGUAGE plpgsql AS $$
-- changed: [{"lon": .., "lat": .., "grid": ..}, ...] of the rows whose map view changed.
-- One call for both layers (each call costs a few ms): the grids' extent, which holds
-- their events' points, or just the points for events outside every grid.
DECLARE
  points geometry;
  grids geometry;
BEGIN
  SELECT ST_Transform(ST_SetSRID(ST_Expand(ST_Extent(
           ST_MakePoint((c->>'lon')::float8, (c->>'lat')::float8)), 1e-6)::geometry, 4326), 3857)
    INTO points FROM jsonb_array_elements(changed) AS c;
  IF points IS NULL THEN
    RETURN;
  END IF;
  SELECT ST_Envelope(ST_Collect(a.geom_3857)) INTO grids
  FROM areas a
  WHERE a.level = 'grid'
    AND a.code = ANY (ARRAY(SELECT DISTINCT c->>'grid' FROM jsonb_array_elements(changed) AS c
                            WHERE c->>'grid' IS NOT NULL));
  IF grids IS NULL THEN
    PERFORM gridmap_invalidate_layers(ARRAY['events'], points);
  ELSE
    PERFORM gridmap_invalidate_layers(ARRAY['events', 'grids'],
                                      ST_Envelope(ST_Collect(grids, points)));
  END IF;
END
$$
"""

ON_INSERT_OR_DELETE = """
CREATE FUNCTION gridmap_events_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE changed jsonb;
BEGIN
  IF TG_OP = 'INSERT' THEN
    SELECT jsonb_agg(jsonb_build_object('lon', lon, 'lat', lat, 'grid', grid_code))
      INTO changed FROM new_rows;
  ELSE
    SELECT jsonb_agg(jsonb_build_object('lon', lon, 'lat', lat, 'grid', grid_code))
      INTO changed FROM old_rows;
  END IF;
  IF changed IS NOT NULL THEN
    PERFORM gridmap_events_invalidate(changed);
  END IF;
  RETURN NULL;
END
$$
"""

ON_UPDATE = f"""
CREATE FUNCTION gridmap_events_rows_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE changed jsonb;
BEGIN
  SELECT jsonb_agg(x) INTO changed FROM (
    SELECT jsonb_build_object('lon', o.lon, 'lat', o.lat, 'grid', o.grid_code) AS x
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE (o.{SHOWN.replace(', ', ', o.')}) IS DISTINCT FROM (n.{SHOWN.replace(', ', ', n.')})
    UNION ALL
    SELECT jsonb_build_object('lon', n.lon, 'lat', n.lat, 'grid', n.grid_code)
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE (o.lon, o.lat, o.grid_code) IS DISTINCT FROM (n.lon, n.lat, n.grid_code)
  ) AS rows;
  IF changed IS NOT NULL THEN
    PERFORM gridmap_events_invalidate(changed);
  END IF;
  RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(f"CREATE INDEX ix_events_open_grid ON events (grid_code) WHERE {OPEN}")
    op.execute(f"CREATE INDEX ix_events_open_geom ON events USING gist (geom) WHERE {OPEN}")
    op.execute(INVALIDATE)
    op.execute(ON_INSERT_OR_DELETE)
    op.execute(ON_UPDATE)
    op.execute(
        "CREATE TRIGGER tr_events_inserted AFTER INSERT ON events "
        "REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_events_rows_changed()"
    )
    op.execute(
        "CREATE TRIGGER tr_events_deleted AFTER DELETE ON events "
        "REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_events_rows_changed()"
    )
    op.execute(
        "CREATE TRIGGER tr_events_updated AFTER UPDATE ON events "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_events_rows_updated()"
    )
    op.execute(
        "CREATE TRIGGER tr_events_truncated AFTER TRUNCATE ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_layers_changed('events', 'grids')"
    )
    op.execute(
        "INSERT INTO layer_versions (layer, version) VALUES ('events', 1) "
        "ON CONFLICT (layer) DO NOTHING"
    )


def downgrade() -> None:
    for trigger in ("inserted", "deleted", "updated", "truncated"):
        op.execute(f"DROP TRIGGER IF EXISTS tr_events_{trigger} ON events")
    op.execute("DROP FUNCTION IF EXISTS gridmap_events_rows_updated()")
    op.execute("DROP FUNCTION IF EXISTS gridmap_events_rows_changed()")
    op.execute("DROP FUNCTION IF EXISTS gridmap_events_invalidate(jsonb)")
    op.execute("DROP INDEX IF EXISTS ix_events_open_geom")
    op.execute("DROP INDEX IF EXISTS ix_events_open_grid")
