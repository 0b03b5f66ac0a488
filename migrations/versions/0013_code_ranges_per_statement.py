"""A code's validity ranges: checked once per statement instead of a GiST entry per row.

The GiST exclusion constraint ``ex_areas_code_per_generation`` (a code may not be
valid twice in one generation) cost 0.83 s of the 2.17 s it takes to write 65,000
new grids into ``areas`` (``benchmarks/profile_areas_write.py``): btree_gist inserts
one entry per row into a GiST tree. The same rule is now kept by

- a partial unique index on the codes still valid (``generation_high IS NULL``):
  at most one open row per code, enforced row by row and across concurrent
  transactions by PostgreSQL's unique check (a second open row of a code now fails
  with ``unique_violation`` on ``uq_areas_open_code``);
- a statement-level trigger that, after every INSERT or UPDATE, refuses any two rows
  of one code whose generation ranges overlap: rows the statement closed are joined to
  ``areas`` by code; rows it left open can only clash with a closed row ending at or
  after their start, which one probe of an index on ``generation_high`` rules out in
  the usual case (a publish opens rows in a generation newer than every end). It
  raises ``exclusion_violation`` naming the old constraint. City and district codes
  share a length, so a code is one code across those two levels, as before.

Checked per statement, not per row: a statement whose rows clash only half-way
through (swapping two codes in one UPDATE) passes where the constraint refused it;
what the statement leaves behind is checked exactly.

Writers of ``areas`` take the advisory lock ``gridmap.db.locks.AREAS_WRITERS`` before
they touch a row — publishers and the bulk loader themselves, anyone else through a
BEFORE-statement trigger — so under READ COMMITTED the check's queries see every
committed row: two transactions cannot each pass with rows that clash only with the
other's. (Under REPEATABLE READ or SERIALIZABLE they would see their snapshot only;
there the layer-invalidation trigger of 0003/0012 already fails a concurrent writer
with a serialization error.)

Revision ID: 0013_code_ranges_per_statement
Revises: 0012_layer_lock_order
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0013_code_ranges_per_statement"
down_revision = "0012_layer_lock_order"
branch_labels = None
depends_on = None

AREAS_WRITERS = 0x6772_6964  # gridmap.db.locks.AREAS_WRITERS (a migration is frozen)

# One code across levels, as the exclusion constraint had it (its key was the code's
# value and length): only city and district codes share a length. The level is in the
# join so that ix_areas_level_code serves it.
CLASH = """
  SELECT n.code, n.generation_low AS low, n.generation_high AS high,
         a.generation_low AS other_low, a.generation_high AS other_high
    INTO clash
    FROM changed_rows n
    JOIN areas a ON a.code = n.code AND a.id <> n.id
                AND a.level = ANY (CASE WHEN n.level IN ('city', 'district')
                                        THEN ARRAY['city', 'district']
                                        ELSE ARRAY[n.level] END)
   WHERE int4range(a.generation_low, a.generation_high, '[]')
      && int4range(n.generation_low, n.generation_high, '[]')
     AND {only}
   LIMIT 1;
    clashed := FOUND;"""

LOCK_FUNCTION = f"""
CREATE FUNCTION gridmap_areas_writers_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock({AREAS_WRITERS});
  RETURN NULL;
END $$;
"""

CHECK_FUNCTION = f"""
CREATE FUNCTION gridmap_areas_code_ranges() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  clash record;
  clashed boolean := false;
  any_closed boolean;
  earliest_open integer;
BEGIN
  SELECT bool_or(generation_high IS NOT NULL),
         min(generation_low) FILTER (WHERE generation_high IS NULL)
    INTO any_closed, earliest_open
    FROM changed_rows;
  -- Rows given an end (closed by a publish, or history written as such): compared
  -- with every other row of their code.
  IF any_closed THEN
    {CLASH.format(only="n.generation_high IS NOT NULL")}
  END IF;
  -- Rows still valid: two of one code are refused by uq_areas_open_code, so the only
  -- possible clash is with a closed row that ends at or after the new row's start;
  -- one probe of ix_areas_generation_high usually rules that out for all of them.
  IF NOT clashed AND EXISTS (SELECT 1 FROM areas WHERE generation_high >= earliest_open) THEN
    {CLASH.format(only="n.generation_high IS NULL")}
  END IF;
  IF clashed THEN
    RAISE EXCEPTION 'area code % would be valid twice: generations %..% and %..%',
      clash.code, clash.low, coalesce(clash.high::text, 'now'),
      clash.other_low, coalesce(clash.other_high::text, 'now')
      USING ERRCODE = 'exclusion_violation', TABLE = 'areas',
            CONSTRAINT = 'ex_areas_code_per_generation';
  END IF;
  RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute("ALTER TABLE areas DROP CONSTRAINT ex_areas_code_per_generation")
    op.execute(
        "CREATE UNIQUE INDEX uq_areas_open_code ON areas (code) WHERE generation_high IS NULL"
    )
    op.execute(
        "CREATE INDEX ix_areas_generation_high ON areas (generation_high) "
        "WHERE generation_high IS NOT NULL"
    )
    op.execute(LOCK_FUNCTION)
    op.execute(CHECK_FUNCTION)
    # The lock before the statement touches a row: taken after, it would wait while
    # holding row locks a publisher (which holds the lock) may need — a deadlock.
    for event in ("INSERT", "UPDATE OF code, level, generation_low, generation_high"):
        name = event.split()[0].lower()
        op.execute(
            f"CREATE TRIGGER tr_areas_writers_lock_{name} BEFORE {event} ON areas "
            "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_areas_writers_lock()"
        )
    # Transition tables rule out a column list: every UPDATE is checked (renames
    # change no range and pass).
    for event in ("INSERT", "UPDATE"):
        op.execute(
            f"CREATE TRIGGER tr_areas_code_ranges_{event.lower()} AFTER {event} ON areas "
            "REFERENCING NEW TABLE AS changed_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_areas_code_ranges()"
        )


def downgrade() -> None:
    for event in ("insert", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS tr_areas_code_ranges_{event} ON areas")
        op.execute(f"DROP TRIGGER IF EXISTS tr_areas_writers_lock_{event} ON areas")
    op.execute("DROP FUNCTION IF EXISTS gridmap_areas_code_ranges()")
    op.execute("DROP FUNCTION IF EXISTS gridmap_areas_writers_lock()")
    op.execute("DROP INDEX IF EXISTS uq_areas_open_code")
    op.execute("DROP INDEX IF EXISTS ix_areas_generation_high")
    op.execute(
        "ALTER TABLE areas ADD CONSTRAINT ex_areas_code_per_generation EXCLUDE USING gist "
        "((code::bigint) WITH =, (length(code)) WITH =, "
        "int4range(generation_low, generation_high, '[]') WITH &&)"
    )
