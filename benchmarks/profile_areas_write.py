"""Where the time of writing 65,000 new grids into ``areas`` goes (not a benchmark).

Run after ``benchmarks.bench_import`` (it leaves ``bench_import_new`` holding a
committed 65,000-grid generation on the bench cluster). Each variant inserts the same
grids again (under other codes) in a transaction that is rolled back, with some of the
table's guarantees dropped inside that transaction; the differences are their costs.

Run: .venv/bin/python -m benchmarks.profile_areas_write [--repeat 3]
(it upgrades ``bench_import_new`` to the current migration first)
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from gridmap.db import migrate
from gridmap.db.cluster import EmbeddedCluster

_INSERT = """
INSERT INTO areas (code, level, name, parent_code, generation_low, geom, geom_3857)
SELECT '9' || substr(code, 2), level, name, parent_code, %s, geom, geom_3857 FROM staged
"""
_DROPS = {
    "spatial index": "DROP INDEX ix_areas_geom",
    "code/generation range check": "DROP TRIGGER tr_areas_code_ranges_insert ON areas; "
                                   "DROP INDEX uq_areas_open_code",
    "ST_IsValid check": "ALTER TABLE areas DROP CONSTRAINT ck_areas_geom_valid",
    "generation references (0016)": "DROP TRIGGER tr_areas_generations_insert ON areas",
}  # fmt: skip
# The rules the statement-level checks replaced (migrations 0013, 0016), for an A/B in
# one run.
_BEFORE_0013 = (_DROPS["code/generation range check"] + "; ALTER TABLE areas ADD CONSTRAINT "
                "ex_areas_code_per_generation EXCLUDE USING gist ((code::bigint) WITH =, "
                "(length(code)) WITH =, int4range(generation_low, generation_high, '[]') WITH &&)")


_BEFORE_0016 = (_DROPS["generation references (0016)"] + "; ALTER TABLE areas ADD CONSTRAINT "
                "fk_areas_generation_low_generations FOREIGN KEY (generation_low) REFERENCES "
                "generations (id); ALTER TABLE areas ADD CONSTRAINT "
                "fk_areas_generation_high_generations FOREIGN KEY (generation_high) "
                "REFERENCES generations (id)")


def _insert(conn: psycopg.Connection, generation: int, dropped: list[str]) -> float:
    with conn.transaction(force_rollback=True):
        for name in dropped:
            conn.execute(_DROPS.get(name, name))  # type: ignore[arg-type]
        t0 = time.perf_counter()
        conn.execute(_INSERT, (generation,))
        return time.perf_counter() - t0


def main() -> None:
    """Time the insert with all guarantees, then without each one, then without all."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = EmbeddedCluster(Path(".gridmap/bench-cluster")).up()
    url = make_url(server).set(database="bench_import_new").render_as_string(hide_password=False)
    migrate.upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE staged AS SELECT * FROM areas WHERE level = 'grid'"
                     " AND generation_high IS NULL")  # fmt: skip
        rows = conn.execute("SELECT count(*) FROM staged").fetchone()
        generation = conn.execute("INSERT INTO generations (description) VALUES ('profile')"
                                  " RETURNING id").fetchone()  # fmt: skip
        assert rows is not None and generation is not None
        variants = [("everything", []), ("GiST exclusion instead (before 0013)", [_BEFORE_0013]),
                    ("foreign keys instead (before 0016)", [_BEFORE_0016]),
                    *[(f"without {k}", [k]) for k in _DROPS],
                    ("without all of them", list(_DROPS))]  # fmt: skip
        times: dict[str, list[float]] = {label: [] for label, _ in variants}
        for _ in range(args.repeat):
            for label, dropped in variants:
                conn.autocommit = False
                times[label].append(_insert(conn, generation[0], dropped))
                conn.autocommit = True
        conn.execute("DELETE FROM generations WHERE id = %s", (generation[0],))
    base = statistics.median(times["everything"])
    print(f"insert of {rows[0]:,} grids into areas, median of {args.repeat}:")
    for label, runs in times.items():
        median = statistics.median(runs)
        print(f"  {label:40} {median:6.2f}s  ({base - median:+.2f}s saved)")
    EmbeddedCluster(Path(".gridmap/bench-cluster")).down()


if __name__ == "__main__":
    main()
