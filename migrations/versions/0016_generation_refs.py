"""Areas' references to generations: checked once per statement instead of per row.

``areas.generation_low`` and ``areas.generation_high`` were foreign keys to
``generations``. A foreign key queues one trigger call per written row, each a query
that locks the referenced row: writing 65,000 new grids spent 0.31 s of its 1.9 s in
those 130,000 calls (``EXPLAIN ANALYZE`` of the insert), to check the one generation
they all name. The same rule is now kept by two statement-level triggers:

- after every INSERT or UPDATE of ``areas``: the distinct generations the statement's
  rows name are locked ``FOR KEY SHARE``, as a foreign key locks them, and each must
  exist;
- after every DELETE or UPDATE of ``generations``: no area may name a generation the
  statement removed (or renumbered).

Both raise ``foreign_key_violation`` naming the constraint that was dropped, so callers
see the same error. Under READ COMMITTED each query in the triggers sees every
committed row, and the row locks order a concurrent delete and write as a foreign key
does: a writer that locked a generation first makes the delete wait and then fail on
its rows; a delete that came first makes the writer's lock find nothing, and fail.
(Under REPEATABLE READ or SERIALIZABLE a concurrent delete fails the writer with a
serialization error when it takes the lock.) ``TRUNCATE`` fires none of these: see
migration 0017, which also narrows the UPDATE check to rows whose references changed.

Revision ID: 0016_generation_refs
Revises: 0015_no_geom_digest
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0016_generation_refs"
down_revision = "0015_no_geom_digest"
branch_labels = None
depends_on = None

FOREIGN_KEYS = {
    "generation_low": "fk_areas_generation_low_generations",
    "generation_high": "fk_areas_generation_high_generations",
}

AREAS_CHECK = """
CREATE FUNCTION gridmap_areas_generations_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  named integer[];
  missing integer;
  area record;
BEGIN
  SELECT array(SELECT generation_low FROM changed_rows
               UNION SELECT generation_high FROM changed_rows WHERE generation_high IS NOT NULL)
    INTO named;
  -- As a foreign key does: no generation named here can be deleted until we end.
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

GENERATIONS_CHECK = """
CREATE FUNCTION gridmap_generations_unreferenced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  gone integer[];
  area record;
BEGIN
  IF TG_OP = 'DELETE' THEN
    SELECT array_agg(id) INTO gone FROM old_rows;
  ELSE
    SELECT array_agg(o.id) INTO gone FROM old_rows o
     WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = o.id);
  END IF;
  IF gone IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT code, generation_low, generation_high, generation_low = ANY (gone) AS low
    INTO area FROM areas
   WHERE generation_low = ANY (gone) OR generation_high = ANY (gone) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'update or delete on table "generations" violates foreign key '
                    'constraint "%" on table "areas"',
      CASE WHEN area.low THEN 'fk_areas_generation_low_generations'
           ELSE 'fk_areas_generation_high_generations' END
      USING ERRCODE = 'foreign_key_violation', TABLE = 'generations',
            DETAIL = format('Area %s still refers to generation %s.', area.code,
                            CASE WHEN area.low THEN area.generation_low
                                 ELSE area.generation_high END),
            CONSTRAINT = CASE WHEN area.low THEN 'fk_areas_generation_low_generations'
                              ELSE 'fk_areas_generation_high_generations' END;
  END IF;
  RETURN NULL;
END $$;
"""


def upgrade() -> None:
    for name in FOREIGN_KEYS.values():
        op.execute(f"ALTER TABLE areas DROP CONSTRAINT {name}")
    op.execute(AREAS_CHECK)
    op.execute(GENERATIONS_CHECK)
    for event in ("INSERT", "UPDATE"):
        op.execute(
            f"CREATE TRIGGER tr_areas_generations_{event.lower()} AFTER {event} ON areas "
            "REFERENCING NEW TABLE AS changed_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_areas_generations_exist()"
        )
    op.execute(
        "CREATE TRIGGER tr_generations_delete AFTER DELETE ON generations "
        "REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_generations_unreferenced()"
    )
    op.execute(
        "CREATE TRIGGER tr_generations_update AFTER UPDATE ON generations "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_generations_unreferenced()"
    )


def downgrade() -> None:
    for trigger, table in (("tr_areas_generations_insert", "areas"),
                           ("tr_areas_generations_update", "areas"),
                           ("tr_generations_delete", "generations"),
                           ("tr_generations_update", "generations")):  # fmt: skip
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS gridmap_areas_generations_exist()")
    op.execute("DROP FUNCTION IF EXISTS gridmap_generations_unreferenced()")
    for column, name in FOREIGN_KEYS.items():
        op.execute(
            f"ALTER TABLE areas ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
            "REFERENCES generations (id)"
        )
