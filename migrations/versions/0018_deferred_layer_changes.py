"""Map-layer invalidation can be deferred to the end of a long writer's transaction.

A publisher of a new generation bumped the area layers (``grids`` among them) at its
first write to ``areas`` and held those ``layer_versions`` row locks until it committed
— through the checks and the re-assignment, half a minute for a city of 65,000 grids.
Every event stored meanwhile bumps ``events`` and ``grids`` (its trigger) and waited for
the whole publish; and a report that had locked ``events`` before the publisher moved
open events (the events trigger locks ``events``) deadlocked with it, failing the
import. With ``gridmap.defer_layer_changes`` set to ``on`` (``SET LOCAL``) the function
does nothing; the writer bumps every layer once, at its end — it does not track which
it changed (``gridmap.layers.announce_deferred``) — holding those locks for milliseconds.
The function's body is 0012's with that test first (``downgrade`` restores 0012's).

Revision ID: 0018_deferred_layer_changes
Revises: 0017_generation_refs_truncate
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0018_deferred_layer_changes"
down_revision = "0017_generation_refs_truncate"
branch_labels = None
depends_on = None

_BODY = """
CREATE OR REPLACE FUNCTION gridmap_invalidate_layers(p_layers text[], p_bbox geometry DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  l text;
  v bigint;
BEGIN
{deferred}  INSERT INTO layer_versions (layer, version, changed_at)
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
_DEFERRED = """  IF current_setting('gridmap.defer_layer_changes', true) = 'on' THEN
    RETURN;  -- the writer announces its changes at its end
  END IF;
"""


def upgrade() -> None:
    op.execute(_BODY.format(deferred=_DEFERRED))


def downgrade() -> None:
    op.execute(_BODY.format(deferred=""))
