"""The bulk loader against a real PostGIS: one transaction, COPY, indexes rebuilt."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator

import psycopg
import pytest

from gridmap.errors import ConflictError, InvalidInputError
from gridmap.ingest import LoadSummary, load_city
from sample_data.city import SampleCity

Connect = Callable[[], psycopg.Connection]


@pytest.fixture
def empty_db(database_factory: Callable[..., str]) -> Iterator[Connect]:
    """A freshly migrated, empty database (all DB setup of this module lives here)."""
    url = database_factory()
    opened: list[psycopg.Connection] = []

    def connect() -> psycopg.Connection:
        opened.append(psycopg.connect(url))
        return opened[-1]

    yield connect
    for conn in opened:
        conn.close()


def _one(conn: psycopg.Connection, query: str) -> object:
    row = conn.execute(query).fetchone()  # type: ignore[call-overload]
    assert row is not None
    return row[0]


def _schema(conn: psycopg.Connection) -> tuple[set[str], set[str]]:
    indexes = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'")
    constraints = conn.execute(
        "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace"
    )
    return {r[0] for r in indexes.fetchall()}, {r[0] for r in constraints.fetchall()}


def test_loads_everything_and_activates_one_generation(
    empty_db: Connect, sample_city: SampleCity
) -> None:
    conn = empty_db()
    schema_before = _schema(conn)
    conn.commit()
    summary = load_city(conn, sample_city, description="test city")
    conn.commit()
    assert isinstance(summary, LoadSummary)
    expected = sample_city.counts()
    assert summary.rows == {
        "areas": len(sample_city.areas),
        "buildings": expected["buildings"],
        "households": expected["households"],
        "persons": expected["persons"],
        "facilities": expected["facilities"],
        "workers": expected["workers"],
        "worker_assignments": expected["workers"],
    }
    for table, n in summary.rows.items():
        assert _one(conn, f"SELECT count(*) FROM {table}") == n, table
    gen = conn.execute("SELECT id, description FROM generations WHERE active").fetchall()
    assert gen == [(summary.generation_id, "test city")]
    assert _one(conn, "SELECT count(*) FROM areas WHERE generation_low <> "
                f"{summary.generation_id} OR generation_high IS NOT NULL") == 0  # fmt: skip
    assert _schema(conn) == schema_before  # indexes and foreign keys are back
    assert "generation" in str(summary) and summary.seconds > 0


def test_people_reach_their_grid_through_ids(empty_db: Connect, sample_city: SampleCity) -> None:
    conn = empty_db()
    load_city(conn, sample_city)
    conn.commit()
    rows = conn.execute(
        """
        SELECT p.id_number, h.code, b.code, b.grid_code, p.care_tags, p.birth_date
        FROM persons p JOIN households h ON h.id = p.household_id
        JOIN buildings b ON b.id = h.building_id
        """
    ).fetchall()
    persons = sample_city.persons.set_index("id_number")
    building_of = sample_city.households.set_index("code").building_code
    assert len(rows) == len(persons)
    for id_number, household, building, grid, tags, born in rows:
        assert persons.household_code[id_number] == household
        assert building_of[household] == building and building.startswith(grid)
        assert tags == persons.care_tags[id_number]
        assert born == persons.birth_date[id_number].date()
    in_db = collections.Counter(tag for *_, tags, _ in rows for tag in tags)
    in_city = collections.Counter(tag for tags in sample_city.persons.care_tags for tag in tags)
    assert in_db == in_city


def test_geometry_and_projection(empty_db: Connect, sample_city: SampleCity) -> None:
    conn = empty_db()
    load_city(conn, sample_city)
    conn.commit()
    assert _one(conn, "SELECT count(*) FROM areas WHERE NOT ST_IsValid(geom)") == 0
    assert _one(conn, "SELECT DISTINCT GeometryType(geom) FROM areas") == "MULTIPOLYGON"
    drift = _one(
        conn,
        "SELECT max(ST_HausdorffDistance(geom_3857, ST_Transform(geom, 3857))) FROM ("
        " SELECT geom, geom_3857 FROM areas UNION ALL SELECT geom, geom_3857 FROM buildings) g",
    )
    assert isinstance(drift, float) and drift < 1e-3  # metres
    misplaced = _one(
        conn,
        "SELECT count(*) FROM facilities f JOIN areas a ON a.code = f.grid_code "
        "WHERE NOT ST_Covers(a.geom, f.geom)",
    )
    assert misplaced == 0
    city_wkb = sample_city.level("grid").geometry.to_wkb().tolist()
    db_wkb = conn.execute(
        "SELECT ST_AsBinary(geom) FROM areas WHERE level = 'grid' ORDER BY code"
    ).fetchall()
    assert [bytes(r[0]) for r in db_wkb] == city_wkb  # shipped bit for bit


def test_refuses_a_second_city(empty_db: Connect, sample_city: SampleCity) -> None:
    conn = empty_db()
    first = load_city(conn, sample_city)
    conn.commit()
    with pytest.raises(ConflictError, match="replace=True"):
        load_city(conn, sample_city)
    conn.rollback()
    assert _one(conn, "SELECT count(*) FROM generations") == 1
    assert _one(conn, "SELECT id FROM generations WHERE active") == first.generation_id


def test_replace_truncates_first(empty_db: Connect, sample_city: SampleCity) -> None:
    conn = empty_db()
    load_city(conn, sample_city)
    conn.commit()
    summary = load_city(conn, sample_city, replace=True, description="again")
    conn.commit()
    assert _one(conn, "SELECT count(*) FROM generations") == 1
    assert _one(conn, "SELECT description FROM generations WHERE active") == "again"
    assert _one(conn, "SELECT count(*) FROM persons") == summary.rows["persons"]
    assert _one(conn, "SELECT min(id) FROM buildings") == 1


def test_bad_input_rolls_everything_back(empty_db: Connect, sample_city: SampleCity) -> None:
    conn = empty_db()
    schema_before = _schema(conn)
    conn.commit()
    persons = sample_city.persons.copy()
    persons.loc[persons.index[0], "household_code"] = "no-such-household"
    broken = SampleCity(**{**vars(sample_city), "persons": persons})
    with pytest.raises(InvalidInputError, match="no-such-household"):
        load_city(conn, broken)
    conn.rollback()
    assert _one(conn, "SELECT count(*) FROM areas") == 0
    assert _one(conn, "SELECT count(*) FROM generations") == 0
    assert _schema(conn) == schema_before


def test_loads_what_write_files_wrote(
    empty_db: Connect, sample_city: SampleCity, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from sample_data.city import read_files, write_files

    out = tmp_path_factory.mktemp("handover")
    write_files(sample_city, out)
    conn = empty_db()
    summary = load_city(conn, read_files(out))
    conn.commit()
    assert summary.rows["areas"] == len(sample_city.areas)
    names: dict[str, str] = dict(
        conn.execute("SELECT code, name FROM areas WHERE level = 'district'").fetchall()
    )
    assert names == dict(zip(sample_city.level("district").code,
                             sample_city.level("district").name, strict=True))  # fmt: skip
