"""Map-layer invalidation: row locks in one order, and no table scan per call.

``gridmap_invalidate_layers`` bumped ``layer_versions`` with one
``INSERT … ON CONFLICT DO UPDATE`` of several rows. Two transactions doing that at the
same time (two API processes storing events: the events trigger bumps ``events`` and
``grids``) deadlocked inside the speculative insertion — PostgreSQL's detector broke the
cycle after ``deadlock_timeout`` (1 s), a 1 s stall and a failed statement each time.
Now missing rows are inserted only when missing, and the rows are locked in layer order
(``SELECT … ORDER BY layer FOR UPDATE``) and then updated one by one.

Trimming ``layer_changes`` to the last 1,000 versions was one DELETE joined to
``layer_versions`` that the planner ran as a sequential scan of the whole table (~2,000
rows and their dead versions: 1.4 ms on every call, i.e. on every events INSERT); per
layer with its version as a constant, it is an index range scan.

Revision ID: 0012_layer_lock_order
Revises: 0011_checked_levels
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0012_layer_lock_order"
down_revision = "0011_checked_levels"
branch_labels = None
depends_on = None

ORDERED = """
CREATE OR REPLACE FUNCTION gridmap_invalidate_layers(p_layers text[], p_bbox geometry DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  l text;
  v bigint;
BEGIN
  INSERT INTO layer_versions (layer, version, changed_at)
  SELECT DISTINCT x, 1, now() FROM unnest(p_layers) AS x
  WHERE NOT EXISTS (SELECT 1 FROM layer_versions lv WHERE lv.layer = x)
  ON CONFLICT (layer) DO NOTHING;
  FOR l IN SELECT layer FROM layer_versions WHERE layer = ANY (p_layers) ORDER BY layer
           FOR UPDATE LOOP
    UPDATE layer_versions SET version = version + 1, changed_at = now()
    WHERE layer = l RETURNING version INTO v;
    INSERT INTO layer_changes (layer, version, bbox) VALUES (l, v, p_bbox);
    DELETE FROM layer_changes WHERE layer = l AND version < v - 1000;
  END LOOP;
END
$$
"""

UPSERT = """
CREATE OR REPLACE FUNCTION gridmap_invalidate_layers(p_layers text[], p_bbox geometry DEFAULT NULL)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO layer_versions (layer, version, changed_at)
  SELECT DISTINCT l, 2, now() FROM unnest(p_layers) AS l
  ON CONFLICT (layer) DO UPDATE
    SET version = layer_versions.version + 1, changed_at = now();
  INSERT INTO layer_changes (layer, version, bbox)
  SELECT layer, version, p_bbox FROM layer_versions WHERE layer = ANY (p_layers);
  DELETE FROM layer_changes c USING layer_versions v
  WHERE c.layer = v.layer AND v.layer = ANY (p_layers) AND c.version < v.version - 1000;
$$
"""


def upgrade() -> None:
    op.execute(ORDERED)


def downgrade() -> None:
    op.execute(UPSERT)
