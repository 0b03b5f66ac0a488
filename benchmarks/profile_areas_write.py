"""Where the time of writing 65,000 new grids into ``areas`` goes (not a benchmark).

Run after ``benchmarks.bench_import`` (it leaves ``bench_import_new`` holding a
committed 65,000-grid generation on the bench cluster, and the sample's
``grid.shp``). Each variant COPYs that file's grids again (under other codes), encoded
as an import encodes them, in a transaction that is rolled back, with some of the
table's guarantees dropped inside that transaction; the table is vacuumed and a
checkpoint taken before each. Two views of the same costs:

- "without X": everything but X (what dropping X alone would save);
- "only X": nothing but X (X's own cost on top of the bare table).

Run: .venv/bin/python -m benchmarks.profile_areas_write [--repeat 3] [--partition]
(it upgrades ``bench_import_new`` to the current migration first)

``--partition`` times a design gridmap does not use, against the COPY into ``areas``:
``areas`` partitioned (a copy, in a scratch database), the new rows COPYed into a table
of their own, its indexes built and its checks validated after the load, the
cross-partition rule "one open row per code" checked by a query, then ``ATTACH
PARTITION`` (a lock that does not stop readers). Each step's end is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
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


def _settle(conn: psycopg.Connection) -> None:
    """Every variant starts alike: the rows the last one rolled back are vacuumed away
    (their index entries would otherwise pile up, run after run: a GiST index once grew
    from 3 to 45 MB so) and its writes are flushed."""
    conn.execute("VACUUM areas")
    conn.execute("CHECKPOINT")


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


_CHECKS = ("level IN ('city','district','street','community','grid')",
           "(level IN ('city','district') AND code ~ '^[0-9]{6}$')"
           " OR (level = 'street' AND code ~ '^[0-9]{9}$')"
           " OR (level = 'community' AND code ~ '^[0-9]{12}$')"
           " OR (level = 'grid' AND code ~ '^[0-9]{15}$')",
           "ST_IsValid(geom)")  # fmt: skip
_ADD_CHECKS = ", ".join(f"ADD CONSTRAINT ck{i} CHECK ({c})" for i, c in enumerate(_CHECKS))
_INDEXES = ["USING gist (geom)", "(parent_code)", "(level, code)"]
_PARTITIONED = [
    "CREATE TABLE pa (LIKE areas INCLUDING DEFAULTS, batch integer NOT NULL DEFAULT 0)"
    " PARTITION BY LIST (batch)",
    f"ALTER TABLE pa {_ADD_CHECKS}",
    "CREATE TABLE pa_0 PARTITION OF pa FOR VALUES IN (0)",
    "INSERT INTO pa SELECT *, 0 FROM areas",
    *[f"CREATE INDEX ON pa {columns}" for columns in _INDEXES],
    # Unique indexes on a partitioned table must hold the partition key.
    "CREATE UNIQUE INDEX ON pa (code, batch) WHERE generation_high IS NULL",
    "ALTER TABLE pa ADD PRIMARY KEY (id, batch)",
    "VACUUM ANALYZE pa",
]
_BULK_STEPS = [
    ("indexes", [*[f"CREATE INDEX ON t {columns}" for columns in _INDEXES],
                 "CREATE UNIQUE INDEX ON t (code, batch) WHERE generation_high IS NULL",
                 "ALTER TABLE t ADD PRIMARY KEY (id, batch)"]),
    ("checks", [f"ALTER TABLE t {_ADD_CHECKS}, ADD CONSTRAINT ck_batch CHECK (batch = 1)"]),
    ("open codes", ["SELECT 1 FROM t n WHERE EXISTS (SELECT 1 FROM pa a WHERE a.level = n.level"
                    " AND a.code = n.code AND a.generation_high IS NULL) LIMIT 1"]),
    ("attach", ["ALTER TABLE pa ATTACH PARTITION t FOR VALUES IN (1)"]),
]  # fmt: skip


def _bulk_into_partition(conn: psycopg.Connection, text: str, columns: list[str]) -> list[float]:
    """Seconds from the start to the end of each step of the partition design, rolled back."""
    with conn.transaction(force_rollback=True):
        t0 = time.perf_counter()
        conn.execute("CREATE TABLE t (LIKE pa INCLUDING DEFAULTS)")
        conn.execute("ALTER TABLE t ALTER batch SET DEFAULT 1")
        with conn.cursor() as cur, cur.copy(f"COPY t ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(text)
        marks = [time.perf_counter() - t0]
        for _, statements in _BULK_STEPS:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]
            marks.append(time.perf_counter() - t0)
        return marks


def _partition_main(server: str, frame: pd.DataFrame, repeat: int) -> None:
    """Alternate the COPY into ``areas`` with the partition design in a scratch database."""
    admin_url = make_url(server).set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS profile_partition")
        admin.execute("CREATE DATABASE profile_partition TEMPLATE bench_import_new")
    url = make_url(server).set(database="profile_partition").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in _PARTITIONED:
            conn.execute(statement)  # type: ignore[arg-type]
        row = conn.execute("INSERT INTO generations (description) VALUES ('profile')"
                           " RETURNING id").fetchone()  # fmt: skip
        assert row is not None
        encoded = bulk._areas_columns(frame, row[0])
        columns = list(encoded)
        frame_text = "\n".join(map("\t".join, zip(*encoded.values(), strict=True))) + "\n"
        labels = ["COPY", *[label for label, _ in _BULK_STEPS]]
        for _ in range(repeat):
            conn.execute("CHECKPOINT")
            conn.autocommit = False
            into_areas = _copy(conn, frame_text, columns, [])
            conn.autocommit = True
            conn.execute("CHECKPOINT")
            conn.autocommit = False
            marks = _bulk_into_partition(conn, frame_text, columns)
            conn.autocommit = True
            steps = ", ".join(f"{label} {m:.2f}" for label, m in zip(labels, marks, strict=True))
            print(f"COPY into areas {into_areas:.2f}s | partition: {steps} (s from start)")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE profile_partition")


def main() -> None:
    """Time the COPY with every guarantee, without each, with each alone, with none."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--partition",
        action="store_true",
        help="time the partition design against the COPY into areas",
    )
    args = parser.parse_args()
    server = EmbeddedCluster(Path(".gridmap/bench-cluster")).up()
    url = make_url(server).set(database="bench_import_new").render_as_string(hide_password=False)
    migrate.upgrade(url)
    frame = read_layer(Path(".gridmap/bench-import/grid.shp"), "grid").frame
    frame = frame.assign(level="grid", code="9" + frame.code.str[1:])
    if args.partition:
        _partition_main(server, frame, args.repeat)
        return
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO generations (description) VALUES ('profile')"
                           " RETURNING id").fetchone()  # fmt: skip
        assert row is not None
        columns = bulk._areas_columns(frame, row[0])
        text = "\n".join(map("\t".join, zip(*columns.values(), strict=True))) + "\n"
        times: dict[str, list[float]] = {label: [] for label, _ in _variants()}
        conn.execute("REINDEX TABLE areas")  # earlier runs' rolled-back rows bloat the indexes
        for _ in range(args.repeat):
            for label, setup in _variants():
                _settle(conn)
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
