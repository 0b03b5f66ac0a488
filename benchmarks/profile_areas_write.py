"""Where the time of writing 65,000 new grids into ``areas`` goes (not a benchmark).

Run after ``benchmarks.bench_import`` (it leaves ``bench_import_new`` holding a
committed 65,000-grid generation on the bench cluster, and the sample's
``grid.shp``). Each variant COPYs that file's grids again (under other codes), encoded
as an import encodes them, in a transaction that is rolled back, with some of the
table's guarantees dropped inside that transaction. Two views of the same costs:

- "without X": everything but X (what dropping X alone would save);
- "only X": nothing but X (X's own cost on top of the bare table).

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
from gridmap.ingest import bulk
from gridmap.ingest.reader import read_layer

_GUARANTEES = {
    "spatial index": "DROP INDEX ix_areas_geom",
    "ST_IsValid check": "ALTER TABLE areas DROP CONSTRAINT ck_areas_geom_valid",
    "code format check": "ALTER TABLE areas DROP CONSTRAINT ck_areas_code_format",
    "level check": "ALTER TABLE areas DROP CONSTRAINT ck_areas_level_known",
    "open-code unique index": "DROP INDEX uq_areas_open_code",
    "(level, code) index": "DROP INDEX ix_areas_level_code",
    "parent_code index": "DROP INDEX ix_areas_parent_code",
    # the writers' lock, code ranges (0013), generation references (0016), layer changes
    "statement triggers": "ALTER TABLE areas DISABLE TRIGGER USER",
}
# The rules the statement-level checks replaced (migrations 0013, 0016), for an A/B in
# one run.
_BEFORE_0013 = ["DROP TRIGGER tr_areas_code_ranges_insert ON areas",
                _GUARANTEES["open-code unique index"],
                "ALTER TABLE areas ADD CONSTRAINT ex_areas_code_per_generation EXCLUDE USING "
                "gist ((code::bigint) WITH =, (length(code)) WITH =, "
                "int4range(generation_low, generation_high, '[]') WITH &&)"]  # fmt: skip
_BEFORE_0016 = ["DROP TRIGGER tr_areas_generations_insert ON areas",
                "ALTER TABLE areas ADD CONSTRAINT fk_areas_generation_low_generations "
                "FOREIGN KEY (generation_low) REFERENCES generations (id)",
                "ALTER TABLE areas ADD CONSTRAINT fk_areas_generation_high_generations "
                "FOREIGN KEY (generation_high) REFERENCES generations (id)"]  # fmt: skip
_BARE_TABLE = ["CREATE TEMP TABLE bare (LIKE areas INCLUDING DEFAULTS)"]


def _variants() -> list[tuple[str, list[str]]]:
    everything = list(_GUARANTEES.values())
    return [
        ("everything", []),
        ("GiST exclusion instead (before 0013)", _BEFORE_0013),
        ("foreign keys instead (before 0016)", _BEFORE_0016),
        *[(f"without {name}", [drop]) for name, drop in _GUARANTEES.items()],
        ("nothing (no index but the key, no check)", everything),
        *[(f"only {name}", [d for d in everything if d != drop])
          for name, drop in _GUARANTEES.items()],
        ("a bare temporary table", _BARE_TABLE),
    ]  # fmt: skip


def _copy(conn: psycopg.Connection, text: str, columns: list[str], setup: list[str]) -> float:
    """Seconds to COPY ``text`` after ``setup``, all rolled back."""
    table = "bare" if setup is _BARE_TABLE else "areas"
    with conn.transaction(force_rollback=True):
        for statement in setup:
            conn.execute(statement)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                                            ) as copy:  # fmt: skip
            copy.write(text)
        return time.perf_counter() - t0


def main() -> None:
    """Time the COPY with every guarantee, without each, with each alone, with none."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = EmbeddedCluster(Path(".gridmap/bench-cluster")).up()
    url = make_url(server).set(database="bench_import_new").render_as_string(hide_password=False)
    migrate.upgrade(url)
    frame = read_layer(Path(".gridmap/bench-import/grid.shp"), "grid").frame
    frame = frame.assign(level="grid", code="9" + frame.code.str[1:])
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO generations (description) VALUES ('profile')"
                           " RETURNING id").fetchone()  # fmt: skip
        assert row is not None
        columns = bulk._areas_columns(frame, row[0])
        text = "\n".join(map("\t".join, zip(*columns.values(), strict=True))) + "\n"
        times: dict[str, list[float]] = {label: [] for label, _ in _variants()}
        for _ in range(args.repeat):
            for label, setup in _variants():
                conn.autocommit = False
                times[label].append(_copy(conn, text, list(columns), setup))
                conn.autocommit = True
        conn.execute("DELETE FROM generations WHERE id = %s", row)
    base = statistics.median(times["everything"])
    bare = statistics.median(times["nothing (no index but the key, no check)"])
    print(f"COPY of {len(frame):,} grids into areas, median of {args.repeat}:")
    for label, runs in times.items():
        median = statistics.median(runs)
        vs = f"{median - bare:+.2f}s over nothing" if label.startswith("only") else \
            f"{base - median:+.2f}s saved"  # fmt: skip
        print(f"  {label:42} {median:6.2f}s  ({vs})")
    EmbeddedCluster(Path(".gridmap/bench-cluster")).down()


if __name__ == "__main__":
    main()
