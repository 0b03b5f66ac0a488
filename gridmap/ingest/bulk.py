"""Bulk loading of a whole city (areas, buildings, people, facilities, workers) with COPY.

Everything happens in one transaction: a new generation is created, every table is
filled with ``COPY … FROM STDIN`` (CSV with hex EWKB geometry), and the generation is
activated only at the end — readers see the old state or the new one, never half.

Why it is fast:
- secondary indexes (GiST, GIN, B-tree) and foreign keys of the loaded tables are
  dropped first and rebuilt once at the end (DESIGN: GiST indexes are built after bulk
  loads); unique and primary-key indexes stay;
- ids of buildings, households and workers are reserved from their sequences and
  assigned client-side, so children are linked without staging tables or joins;
- the 3857 copies of geometry are projected with pyproj, vectorised, in Python.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg import sql
from pyproj import Transformer

from gridmap.catalog import CATEGORIES, DEPARTMENTS, MAJOR_CLASSES
from gridmap.db.locks import lock_areas_writers
from gridmap.db.long_writes import configure_long_write
from gridmap.errors import ConflictError, InvalidInputError
from gridmap.ingest import ewkb

LOADED_TABLES = (
    "areas",
    "buildings",
    "households",
    "persons",
    "facilities",
    "workers",
    "worker_assignments",
)
"""Tables :func:`load_city` fills (and, with ``replace=True``, truncates with generations)."""
_CHUNK_ROWS = 100_000
_PIPELINE_ROWS = 8_192
_NULL = r"\N"
_TO_3857 = Transformer.from_crs(4326, 3857, always_xy=True)


class CityTables(Protocol):
    """What :func:`load_city` needs: the tables of :class:`sample_data.city.SampleCity`."""

    areas: pd.DataFrame
    buildings: pd.DataFrame
    households: pd.DataFrame
    persons: pd.DataFrame
    facilities: pd.DataFrame
    workers: pd.DataFrame


@dataclass
class LoadSummary:
    """Outcome of :func:`load_city`: the new active generation, row counts and timings."""

    generation_id: int
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        rows = ", ".join(f"{n:,} {table}" for table, n in self.rows.items())
        return f"generation {self.generation_id} active: {rows} ({self.seconds:.1f}s)"


def load_city(
    conn: psycopg.Connection,
    city: CityTables,
    *,
    description: str = "sample city",
    replace: bool = False,
) -> LoadSummary:
    """Load a whole city into an empty database, in one transaction, and activate it.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection. The load runs in ``conn.transaction()``: it commits at the
        end unless the caller already has a transaction open (then it is a savepoint
        and committing is the caller's business).
    city : CityTables
        Areas (code, level, name, parent_code, geometry), buildings (code, address,
        floors, use, grid_code, geometry), households (code, building_code, room),
        persons (household_code, name, id_number, phone, birth_date, gender,
        care_tags), facilities (code, major_code, minor_code, name, state, grid_code,
        owner_department_code, maintainer_department_code, geometry) and workers
        (code, name, phone, role, on_duty, grid_code). Geometry in EPSG:4326.
    description : str, default "sample city"
        Description of the new generation.
    replace : bool, default False
        Truncate the loaded tables and ``generations`` first (``CASCADE``: tables that
        reference them, such as events, are emptied too).

    Returns
    -------
    LoadSummary
        The id of the new (active) generation, rows per table, timings per step.

    Raises
    ------
    ConflictError
        The database already holds data in these tables and ``replace`` is false.
    InvalidInputError
        A household or person refers to a building or household code that is not in
        ``city``, or a building footprint is not a single polygon.
    """
    timer = _Timer()
    with conn.transaction():
        with timer("prepare"):
            lock_areas_writers(conn)  # before the table locks, as publishers do
            _lock(conn)
            _ensure_empty(conn, replace)
            conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
            configure_long_write(conn)
            _seed_catalogs(conn)
            indexes = _drop_secondary_indexes(conn)
            foreign_keys = _drop_foreign_keys(conn)
            generation = _new_generation(conn, description)
        rows = _copy_all(conn, city, generation, timer)
        with timer("indexes"):
            for statement in indexes + foreign_keys:
                conn.execute(statement)
        with timer("activate+analyze"):
            _activate(conn, generation)
            conn.execute(_analyze_statement())
            _stamp_activated(conn, generation)
    return LoadSummary(generation, rows, sum(timer.laps.values()), timer.laps)


def _copy_all(
    conn: psycopg.Connection, city: CityTables, generation: int, timer: _Timer
) -> dict[str, int]:
    rows: dict[str, int] = {}
    with timer("areas"):
        rows["areas"] = _copy_frame(conn, "areas", city.areas,
                                    lambda part: _areas_columns(part, generation))
    with timer("buildings"):
        building_ids = _reserve_ids(conn, "buildings", len(city.buildings))
        columns = _buildings_columns(city.buildings, building_ids)
        rows["buildings"] = _copy(conn, "buildings", columns)
    with timer("households"):
        household_ids = _reserve_ids(conn, "households", len(city.households))
        columns = _households_columns(city.households, household_ids, city.buildings, building_ids)
        rows["households"] = _copy(conn, "households", columns)
    with timer("persons"):
        columns = _persons_columns(city.persons, city.households, household_ids)
        rows["persons"] = _copy(conn, "persons", columns)
    with timer("facilities"):
        rows["facilities"] = _copy(conn, "facilities", _facilities_columns(city.facilities))
    with timer("workers"):
        worker_ids = _reserve_ids(conn, "workers", len(city.workers))
        rows["workers"] = _copy(conn, "workers", _workers_columns(city.workers, worker_ids))
        columns = _assignment_columns(city.workers, worker_ids)
        rows["worker_assignments"] = _copy(conn, "worker_assignments", columns)
    return rows


class _Timer:
    """Wall-clock seconds per named step."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.laps[name] = self.laps.get(name, 0.0) + time.perf_counter() - start


# --- database state -----------------------------------------------------------------------


def _table_list(tables: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(t) for t in tables)


def _lock(conn: psycopg.Connection) -> None:
    """Keep other writers out (and their ``nextval`` off our reserved id blocks)."""
    conn.execute(
        sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(_table_list(LOADED_TABLES))
    )


def _ensure_empty(conn: psycopg.Connection, replace: bool) -> None:
    if replace:
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                _table_list((*LOADED_TABLES, "generations"))
            )
        )
        return
    filled = {}
    for table in LOADED_TABLES:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        row = conn.execute(query).fetchone()
        if row and row[0]:
            filled[table] = int(row[0])
    if filled:
        held = ", ".join(f"{table}: {n:,} rows" for table, n in filled.items())
        raise ConflictError(
            f"the database already holds data ({held}); a city is only loaded into empty "
            "tables — pass replace=True (CLI: --replace) to truncate them first",
            details=[{"table": t, "rows": n} for t, n in filled.items()],
        )


def _seed_catalogs(conn: psycopg.Connection) -> None:
    """Departments and facility classes (the migration seeds them; this fills any gap)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO departments (code, name, kind) VALUES (%s, %s, %s) "
            "ON CONFLICT (code) DO NOTHING",
            [tuple(d) for d in DEPARTMENTS],
        )
        cur.executemany(
            "INSERT INTO facility_categories (major_code, minor_code, major_name, name, name_en,"
            " owner_department_code, maintainer_department_code)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (c.major_code, c.minor_code, MAJOR_CLASSES[c.major_code], c.name, c.name_en,
                 c.owner, c.maintainer)
                for c in CATEGORIES
            ],
        )  # fmt: skip


def _drop_secondary_indexes(conn: psycopg.Connection) -> list[str]:
    """Drop non-unique indexes that back no constraint; return their CREATE statements."""
    found = conn.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = ANY (%s::regclass[])
          AND NOT i.indisunique AND NOT i.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY 1
        """,
        (list(LOADED_TABLES),),
    ).fetchall()
    for name, _ in found:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(*name.split("."))))
    return [definition for _, definition in found]


def _drop_foreign_keys(conn: psycopg.Connection) -> list[str]:
    """Drop the loaded tables' foreign keys; return the statements that re-add them.

    Re-adding validates each key with one join instead of a trigger call per row.
    """
    found = conn.execute(
        """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE contype = 'f' AND conrelid = ANY (%s::regclass[])
        ORDER BY 1, 2
        """,
        (list(LOADED_TABLES),),
    ).fetchall()
    statements = []
    for table, name, definition in found:
        target = sql.Identifier(*table.split("."))
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(target, sql.Identifier(name))
        )
        statement = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
            target, sql.Identifier(name)
        ) + sql.SQL(definition)  # definition text comes from the server itself
        statements.append(statement.as_string(conn))
    return statements


_NEXT_GENERATION = """
INSERT INTO generations (id, description, active)
SELECT coalesce(max(id), 0) + 1, %s, false FROM generations
RETURNING id
"""


def _new_generation(conn: psycopg.Connection, description: str) -> int:
    """Insert a new, inactive generation; returns its id, the next after the highest.

    The caller holds the areas writers' lock (:func:`~gridmap.db.locks.lock_areas_writers`),
    so no other generation can be inserted meanwhile. Not the id sequence's next value:
    ``--commit`` inserts the generation while the checks still run, and a sequence value
    is not given back when they refuse the file and the transaction is rolled back —
    every refused commit would leave a gap in the generations' history. The sequence is
    moved up to the id (``setval`` is not rolled back: at worst it runs ahead), so that
    rows inserted by its default never take an id in use.
    """
    row = conn.execute(_NEXT_GENERATION, (description,)).fetchone()
    assert row is not None
    conn.execute("SELECT setval(pg_get_serial_sequence('generations', 'id'), %s)", (row[0],))
    return int(row[0])


def _activate(conn: psycopg.Connection, generation: int) -> None:
    """Deactivate the others first: a partial unique index allows one active generation.
    Its ``activated_at`` is :func:`_stamp_activated`'s, once the writer's work is done."""
    conn.execute("UPDATE generations SET active = false WHERE active AND id <> %s", (generation,))
    conn.execute("UPDATE generations SET active = true WHERE id = %s", (generation,))


def _stamp_activated(conn: psycopg.Connection, generation: int) -> None:
    """``activated_at`` = now, the last step before commit: the generation is in force
    from then (``as_of`` resolves by it), not from the start of the transaction (a
    publisher's re-assignment runs half a minute for a big city)."""
    conn.execute("UPDATE generations SET activated_at = statement_timestamp() WHERE id = %s",
                 (generation,))  # fmt: skip


def _analyze_statement() -> sql.Composed:
    # generations too: without statistics the planner walked every grid in code order
    # instead of using the spatial index when joining it (73 ms per tile instead of 2).
    return sql.SQL("ANALYZE {}").format(_table_list((*LOADED_TABLES, "generations")))


def _reserve_ids(conn: psycopg.Connection, table: str, n: int) -> np.ndarray:
    """A block of ``n`` consecutive ids taken from the table's id sequence."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    row = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()
    if row is None or row[0] is None:
        query = sql.SQL("SELECT coalesce(max(id), 0) + 1 FROM {}").format(sql.Identifier(table))
        first_row = conn.execute(query).fetchone()
        assert first_row is not None
        first = int(first_row[0])
    else:
        last_row = conn.execute(
            "SELECT setval(%s::regclass, nextval(%s::regclass) + %s - 1)", (row[0], row[0], n)
        ).fetchone()
        assert last_row is not None
        first = int(last_row[0]) - n + 1
    return np.arange(first, first + n, dtype=np.int64)


# --- COPY ---------------------------------------------------------------------------------
# Rows go out in PostgreSQL's text COPY format, assembled column-wise: noticeably faster
# than pandas.to_csv (about 0.6 s instead of 2 s for a million persons) and no quoting.

Columns = dict[str, list[str]]
"""Column name → values already encoded for text COPY (NULL as ``\\N``)."""


def _copy(conn: psycopg.Connection, table: str, columns: Columns) -> int:
    """COPY encoded ``columns`` into ``table``; returns the number of rows."""
    n = len(next(iter(columns.values()), []))
    return _copy_chunks(conn, table, ({name: values[start:start + _CHUNK_ROWS]
                                       for name, values in columns.items()}
                                      for start in range(0, n, _CHUNK_ROWS)))  # fmt: skip


def _copy_frame(
    conn: psycopg.Connection, table: str, frame: pd.DataFrame,
    encode: Callable[[pd.DataFrame], Columns], chunk_rows: int = _PIPELINE_ROWS,
) -> int:
    """COPY ``frame`` into ``table``, encoding it ``chunk_rows`` at a time.

    PostgreSQL ingests each chunk while the next one is encoded, so the client's
    encoding (projection, hex EWKB) and the server's work (parsing, constraints,
    indexes) overlap instead of running one after the other.
    """
    return _copy_chunks(conn, table, (encode(frame.iloc[start:start + chunk_rows])
                                      for start in range(0, len(frame), chunk_rows)))


def _copy_chunks(conn: psycopg.Connection, table: str, chunks: Iterator[Columns]) -> int:
    """COPY chunks of encoded columns (the same names in each) into ``table``; returns
    the number of rows. A chunk is asked for only after the one before was sent."""
    first = next(chunks, None)
    if first is None:
        return 0
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), _table_list(list(first))
    )
    rows = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for columns in itertools.chain([first], chunks):
            lines = list(map("\t".join, zip(*columns.values(), strict=True)))
            copy.write("\n".join(lines) + "\n")
            rows += len(lines)
    return rows


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(values: pd.Series | np.ndarray | list[object]) -> list[str]:
    """Text values, escaped for COPY only where needed; missing values become NULL."""
    series = pd.Series(values, dtype=object)
    missing = series.isna().to_numpy()
    out = series.where(~missing, "").astype(str).tolist()
    if any("\\" in v or "\t" in v or "\n" in v or "\r" in v for v in out):
        out = [v.translate(_ESCAPES) for v in out]
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            out[i] = _NULL
    return out


def _ints(values: pd.Series | np.ndarray) -> list[str]:
    return np.asarray(values, dtype=np.int64).astype(str).tolist()


def _bools(values: pd.Series | np.ndarray) -> list[str]:
    return np.where(np.asarray(values, dtype=bool), "t", "f").tolist()


def _dates(values: pd.Series) -> list[str]:
    return _text(pd.to_datetime(values).dt.strftime("%Y-%m-%d"))


def _ewkb(geoms: np.ndarray, srid: int) -> list[str]:
    """Hex EWKB (what the geometry type's text input reads)."""
    # Binary WKB + bytes.hex() is about 3× faster than shapely's own hex output.
    wkb = shapely.to_wkb(shapely.set_srid(geoms, srid), include_srid=True)
    return [b.hex() for b in wkb]


def ewkb_pair(geoms: np.ndarray, multi: bool) -> tuple[list[str], list[str]]:
    """Hex EWKB of ``geoms`` (in EPSG:4326) for a ``geom`` column and, projected, for a
    ``geom_3857`` column; as MultiPolygons when ``multi``. Plain polygon layers take
    the NumPy encoder; anything else (empty, 3-D, other types) shapely's."""
    if ewkb.encodable(geoms, multi):
        layout = ewkb.PolygonLayout(geoms, multi)
        return layout.hex(4326), layout.hex(3857, _forward_3857(layout.coords))
    if multi:
        geoms = _as_multi(geoms)
    return _ewkb(geoms, 4326), _ewkb(_project_3857(geoms), 3857)


def _text_arrays(lists: pd.Series) -> list[str]:
    """``text[]`` literals (``{a,b}``), escaped for COPY; most lists are empty."""
    cache: dict[tuple[str, ...], str] = {}
    out = []
    for value in lists:
        key = tuple(value) if isinstance(value, list | tuple | np.ndarray) else ()
        literal = cache.get(key)
        if literal is None:
            quoted = ('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in key)
            literal = cache[key] = ("{" + ",".join(quoted) + "}").translate(_ESCAPES)
        out.append(literal)
    return out


def _forward_3857(xy: np.ndarray) -> np.ndarray:
    return np.column_stack(_TO_3857.transform(xy[:, 0], xy[:, 1]))


def _project_3857(geoms: np.ndarray) -> np.ndarray:
    return shapely.transform(geoms, _forward_3857)


def _geometry_4326(frame: pd.DataFrame) -> np.ndarray:
    crs = getattr(frame, "crs", None)
    if crs is not None and crs.to_epsg() not in (4326, 4490):
        frame = frame.to_crs(4326)  # type: ignore[attr-defined]
    return np.asarray(frame.geometry.to_numpy(), dtype=object)


def _as_multi(geoms: np.ndarray) -> np.ndarray:
    geoms = geoms.copy()
    single = np.flatnonzero(shapely.get_type_id(geoms) == 3)
    geoms[single] = shapely.multipolygons(geoms[single], indices=np.arange(single.size))
    return geoms


def _as_single(geoms: np.ndarray) -> np.ndarray:
    """One-part MultiPolygons (as shapefiles return them) become Polygons."""
    geoms = geoms.copy()
    multi = np.flatnonzero(shapely.get_type_id(geoms) == 6)
    if (shapely.get_num_geometries(geoms[multi]) > 1).any():
        raise InvalidInputError("building footprints must be single polygons")
    geoms[multi] = shapely.get_geometry(geoms[multi], 0)
    return geoms


def _ids_of(codes: pd.Series, known_codes: pd.Series, ids: np.ndarray, what: str) -> np.ndarray:
    position = pd.Index(known_codes).get_indexer(codes)
    if (position < 0).any():
        missing = pd.Series(codes)[position < 0].unique()[:5].tolist()
        raise InvalidInputError(f"unknown {what} code(s) {missing}: not in the loaded {what}s")
    return ids[position]


def _areas_columns(areas: pd.DataFrame, generation: int) -> Columns:
    geom, geom_3857 = ewkb_pair(_geometry_4326(areas), multi=True)
    return {
        "code": _text(areas.code),
        "level": _text(areas.level),
        "name": _text(areas.name),
        "parent_code": _text(areas.parent_code),
        "generation_low": [str(generation)] * len(areas),
        "geom": geom,
        "geom_3857": geom_3857,
    }


def _buildings_columns(buildings: pd.DataFrame, ids: np.ndarray) -> Columns:
    geom, geom_3857 = ewkb_pair(_as_single(_geometry_4326(buildings)), multi=False)
    return {
        "id": _ints(ids),
        "code": _text(buildings.code),
        "address": _text(buildings.address),
        "floors": _ints(buildings.floors),
        "use": _text(buildings.use),
        "grid_code": _text(buildings.grid_code),
        "geom": geom,
        "geom_3857": geom_3857,
    }


def _households_columns(
    households: pd.DataFrame, ids: np.ndarray, buildings: pd.DataFrame, building_ids: np.ndarray
) -> Columns:
    building_id = _ids_of(households.building_code, buildings.code, building_ids, "building")
    return {
        "id": _ints(ids),
        "code": _text(households.code),
        "building_id": _ints(building_id),
        "room": _text(households.room),
    }


def _persons_columns(
    persons: pd.DataFrame, households: pd.DataFrame, household_ids: np.ndarray
) -> Columns:
    household_id = _ids_of(persons.household_code, households.code, household_ids, "household")
    return {
        "household_id": _ints(household_id),
        "name": _text(persons.name),
        "id_number": _text(persons.id_number),
        "phone": _text(persons.phone),
        "birth_date": _dates(persons.birth_date),
        "gender": _text(persons.gender),
        "care_tags": _text_arrays(persons.care_tags),
    }


def _facilities_columns(facilities: pd.DataFrame) -> Columns:
    columns = {
        name: _text(facilities[name])
        for name in ("code", "major_code", "minor_code", "name", "state", "grid_code",
                     "owner_department_code", "maintainer_department_code")
    }  # fmt: skip
    columns["geom"] = _ewkb(_geometry_4326(facilities), 4326)
    return columns


def _workers_columns(workers: pd.DataFrame, ids: np.ndarray) -> Columns:
    return {
        "id": _ints(ids),
        "code": _text(workers.code),
        "name": _text(workers.name),
        "phone": _text(workers.phone),
        "role": _text(workers.role),
        "on_duty": _bools(workers.on_duty),
    }


def _assignment_columns(workers: pd.DataFrame, ids: np.ndarray) -> Columns:
    return {"worker_id": _ints(ids), "grid_code": _text(workers.grid_code)}
