"""Two gaps in migration 0016's triggers, closed.

- ``TRUNCATE`` fires no row or statement trigger of ``DELETE``: ``TRUNCATE generations
  CASCADE`` used to empty ``areas`` through the foreign keys, and after 0016 it left
  areas naming generations that no longer existed. An ``AFTER TRUNCATE`` trigger on
  ``generations`` now refuses that unless ``areas`` is empty by then (truncated in the
  same statement, as the bulk loader's ``--replace`` does). (0016's docstring said
  ``imports`` refused it; that table is ``import_jobs``, and listing it in the
  statement was enough to pass.)
- After an ``UPDATE`` of ``areas`` the triggers checked, and locked ``FOR KEY SHARE``,
  the generations every updated row names, renames included; a foreign key skips rows
  whose keys did not change. A rename so held locks on generations without the writers'
  lock, and a publisher activating a generation waited for it. The UPDATE trigger now
  looks only at rows whose ``generation_low`` or ``generation_high`` changed.

Revision ID: 0017_generation_refs_truncate
Revises: 0016_generation_refs
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0017_generation_refs_truncate"
down_revision = "0016_generation_refs"
branch_labels = None
depends_on = None

# As 0016's check, for the rows of an UPDATE whose generation references changed.
UPDATE_CHECK = """
CREATE FUNCTION gridmap_areas_changed_generations_exist() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  named integer[];
  missing integer;
  area record;
BEGIN
  SELECT array(SELECT g FROM changed_rows n JOIN previous_rows o ON o.id = n.id,
                      LATERAL (VALUES (n.generation_low), (n.generation_high)) v(g)
                WHERE g IS NOT NULL
                  AND (n.generation_low, n.generation_high)
                      IS DISTINCT FROM (o.generation_low, o.generation_high)
                GROUP BY g)
    INTO named;
  IF cardinality(named) = 0 THEN
    RETURN NULL;
  END IF;
  PERFORM 1 FROM generations WHERE id = ANY (named) FOR KEY SHARE;
  SELECT g INTO missing FROM unnest(named) g
   WHERE NOT EXISTS (SELECT 1 FROM generations WHERE id = g) LIMIT 1;
  IF missing IS NOT NULL THEN
    SELECT code, generation_low = missing AS low INTO area FROM changed_rows
     WHERE generation_low = missing OR generation_high = missing LIMIT 1;
    RAISE EXCEPTION 'insert or update on table "areas" violates foreign key constraint "%"',
      CASE WHEN area.low THEN 'fk_areas_generation_low_generations'
           ELSE 'fk_areas_generation_high_generations' END
      USING ERRCODE = 'foreign_key_violation', TABLE = 'areas',
            DETAIL = format('Key (%s)=(%s) of area %s is not present in table "generations".',
                            CASE WHEN area.low THEN 'generation_low' ELSE 'generation_high' END,
                            missing, area.code),
            CONSTRAINT = CASE WHEN area.low THEN 'fk_areas_generation_low_generations'
                              ELSE 'fk_areas_generation_high_generations' END;
  END IF;
  RETURN NULL;
END $$;
"""

TRUNCATE_CHECK = """
CREATE FUNCTION gridmap_generations_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  area record;
BEGIN
  SELECT code, generation_low INTO area FROM areas LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'cannot truncate table "generations": areas refer to it'
      USING ERRCODE = 'foreign_key_violation', TABLE = 'generations',
            DETAIL = format('Area %s still refers to generation %s.', area.code,
                            area.generation_low),
            HINT = 'Truncate table "areas" at the same time.',
            CONSTRAINT = 'fk_areas_generation_low_generations';
  END IF;
  RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(UPDATE_CHECK)
    op.execute(TRUNCATE_CHECK)
    op.execute("DROP TRIGGER tr_areas_generations_update ON areas")
    op.execute(
        "CREATE TRIGGER tr_areas_generations_update AFTER UPDATE ON areas "
        "REFERENCING OLD TABLE AS previous_rows NEW TABLE AS changed_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_areas_changed_generations_exist()"
    )
    op.execute(
        "CREATE TRIGGER tr_generations_truncate AFTER TRUNCATE ON generations "
        "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_generations_truncated()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tr_generations_truncate ON generations")
    op.execute("DROP TRIGGER IF EXISTS tr_areas_generations_update ON areas")
    op.execute(
        "CREATE TRIGGER tr_areas_generations_update AFTER UPDATE ON areas "
        "REFERENCING NEW TABLE AS changed_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_areas_generations_exist()"
    )
    op.execute("DROP FUNCTION IF EXISTS gridmap_generations_truncated()")
    op.execute("DROP FUNCTION IF EXISTS gridmap_areas_changed_generations_exist()")
