"""Migration 0016 keeps the rule the foreign keys ``areas.generation_low/high →
generations`` kept: random sequences of area writes and generation deletes and
renumberings are accepted or refused alike by a database at 0015 (foreign keys) and
one at the head (statement-level triggers), and a delete racing a write ends as a
foreign key would end it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import before_and_after

GENERATIONS = 4  # ids 1..4 exist; 5 never does
SQUARE = "ST_Multi(ST_MakeEnvelope(106.5, 29.5, 106.6, 29.6, 4326))"
INSERT = ("INSERT INTO areas (code, level, name, generation_low, generation_high, geom, "
          "geom_3857) VALUES ")  # fmt: skip
ROW = f"(%s, 'district', 'x', %s, %s, {SQUARE}, ST_Transform({SQUARE}, 3857))"


@dataclass(frozen=True)
class Insert:
    """Areas of distinct codes (so the code-range rule never decides) naming these
    generations as (low, high)."""

    rows: tuple[tuple[int, int | None], ...]

    def run(self, conn: psycopg.Connection, serial: int) -> None:
        params = [value for k, (low, high) in enumerate(self.rows)
                  for value in (f"{500100 + serial * 10 + k}", low, high)]  # fmt: skip
        conn.execute(INSERT + ", ".join([ROW] * len(self.rows)), params)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SetRange:
    """Point every area's range at these generations."""

    low: int
    high: int | None

    def run(self, conn: psycopg.Connection, serial: int) -> None:
        conn.execute("UPDATE areas SET generation_low = %s, generation_high = %s",
                     (self.low, self.high))  # fmt: skip


@dataclass(frozen=True)
class Rename:
    """Change every area's name, not its references."""

    def run(self, conn: psycopg.Connection, serial: int) -> None:
        conn.execute("UPDATE areas SET name = name || %s", (str(serial),))


@dataclass(frozen=True)
class Delete:
    generation: int

    def run(self, conn: psycopg.Connection, serial: int) -> None:
        conn.execute("DELETE FROM generations WHERE id = %s", (self.generation,))


@dataclass(frozen=True)
class Renumber:
    generation: int

    def run(self, conn: psycopg.Connection, serial: int) -> None:
        conn.execute("UPDATE generations SET id = id + 100 WHERE id = %s", (self.generation,))


Operation = Insert | SetRange | Rename | Delete | Renumber
IDS = st.integers(1, GENERATIONS + 1)
RANGE = st.tuples(IDS, st.none() | IDS).map(lambda r: (r[0], None if r[1] is None
                                                      else max(r))  # fmt: skip
                                           )  # high ≥ low: the range check passes
OPERATIONS = st.lists(
    st.one_of(
        st.builds(Insert, st.lists(RANGE, min_size=1, max_size=3).map(tuple)),
        st.builds(lambda r: SetRange(*r), RANGE),
        st.just(Rename()),
        st.builds(Delete, IDS),
        st.builds(Renumber, IDS),
    ),
    min_size=1, max_size=8,
)  # fmt: skip


@pytest.fixture(scope="module")
def old_and_new(
    database_factory: Callable[..., str],
) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """Connections to a database at 0015 and one at the head, generations 1–4 in each."""
    with before_and_after(database_factory, "0015_no_geom_digest", GENERATIONS) as pair:
        yield pair


def _outcome(conn: psycopg.Connection, operation: Operation, serial: int) -> str:
    """'ok', 'refused' (a foreign key violation) or another error's class, in a savepoint
    so that a refused statement is undone alone."""
    try:
        with conn.transaction():
            operation.run(conn, serial)
    except psycopg.errors.ForeignKeyViolation:
        return "refused"
    except psycopg.errors.IntegrityError as exc:
        return type(exc).__name__
    return "ok"


def _state(conn: psycopg.Connection) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    areas = conn.execute("SELECT code, name, generation_low, generation_high FROM areas "
                         "ORDER BY 1, 2, 3 NULLS LAST").fetchall()  # fmt: skip
    generations = conn.execute("SELECT id FROM generations ORDER BY id").fetchall()
    return areas, generations


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(operations=OPERATIONS)
@example(operations=[Insert(((1, 5),))])
@example(operations=[Insert(((2, None),)), Delete(2)])
@example(operations=[Insert(((1, 3),)), Renumber(3), Delete(4)])
@example(operations=[Insert(((1, None),)), SetRange(5, None)])
def test_same_statements_accepted_and_refused(
    old_and_new: tuple[psycopg.Connection, psycopg.Connection], operations: list[Operation],
) -> None:
    old, new = old_and_new
    with old.transaction(force_rollback=True), new.transaction(force_rollback=True):
        for serial, operation in enumerate(operations):
            assert _outcome(old, operation, serial) == _outcome(new, operation, serial), operation
            assert _state(old) == _state(new)


@pytest.fixture
def head_url(database_factory: Callable[..., str]) -> str:
    url = database_factory()
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO generations (id, active) VALUES (1, true), (2, false)")
    return url


def test_the_error_names_the_constraint_and_the_area(head_url: str) -> None:
    with psycopg.connect(head_url) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation
                                                           ) as caught:  # fmt: skip
        Insert(((1, None), (1, 7))).run(conn, 0)
    assert caught.value.diag.constraint_name == "fk_areas_generation_high_generations"
    assert "(generation_high)=(7) of area 500101" in str(caught.value.diag.message_detail)
    with psycopg.connect(head_url) as conn:
        Insert(((2, None),)).run(conn, 0)
    with psycopg.connect(head_url) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation
                                                           ) as caught:  # fmt: skip
        conn.execute("DELETE FROM generations WHERE id = 2")
    assert caught.value.diag.constraint_name == "fk_areas_generation_low_generations"
    assert "Area 500100 still refers to generation 2" in str(caught.value.diag.message_detail)


def _in_thread(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _waiting(url: str, query_start: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                           " AND query LIKE %s", (query_start + "%",)).fetchone()  # fmt: skip
    return bool(row and row[0])


def _wait_until(url: str, query_start: str) -> None:
    for _ in range(200):
        if _waiting(url, query_start):
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"no session waits on a lock for {query_start!r}")


def test_a_delete_waits_for_a_writer_and_then_fails(head_url: str) -> None:
    writer = psycopg.connect(head_url)
    Insert(((2, None),)).run(writer, 0)  # not committed: generation 2 is locked

    def delete() -> None:
        with psycopg.connect(head_url) as conn:
            conn.execute("DELETE FROM generations WHERE id = 2")

    thread, errors = _in_thread(delete)
    _wait_until(head_url, "DELETE FROM generations")
    writer.commit()
    writer.close()
    thread.join(10)
    assert [type(e) for e in errors] == [psycopg.errors.ForeignKeyViolation]


def test_a_writer_waits_for_a_delete_and_then_fails(head_url: str) -> None:
    deleter = psycopg.connect(head_url)
    deleter.execute("DELETE FROM generations WHERE id = 2")  # not committed

    def write() -> None:
        with psycopg.connect(head_url) as conn:
            Insert(((2, None),)).run(conn, 0)

    thread, errors = _in_thread(write)
    _wait_until(head_url, "INSERT INTO areas")
    deleter.commit()
    deleter.close()
    thread.join(10)
    assert [type(e) for e in errors] == [psycopg.errors.ForeignKeyViolation]
    with psycopg.connect(head_url) as conn:
        assert conn.execute("SELECT count(*) FROM areas").fetchone() == (0,)


def test_truncating_generations_under_areas_is_refused(head_url: str) -> None:
    with psycopg.connect(head_url) as conn:
        Insert(((1, None),)).run(conn, 0)
    with psycopg.connect(head_url) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation,
                                                           match="areas refer to it"):  # fmt: skip
        conn.execute("TRUNCATE generations CASCADE")
    with psycopg.connect(head_url) as conn:  # both at once, as load_city --replace does
        conn.execute("TRUNCATE areas, generations CASCADE")
        assert conn.execute("SELECT count(*) FROM generations").fetchone() == (0,)


def test_a_rename_locks_no_generation(head_url: str) -> None:
    """A foreign key checks (and locks) only changed keys; so do the triggers: an
    uncommitted rename leaves the generations free to be locked for activation."""
    with psycopg.connect(head_url) as conn:
        Insert(((1, None),)).run(conn, 0)
    renamer = psycopg.connect(head_url)
    renamer.execute("UPDATE areas SET name = 'new name'")
    with psycopg.connect(head_url) as publisher:
        publisher.execute("SELECT id FROM generations WHERE id = 1 FOR UPDATE NOWAIT")
    renamer.execute("UPDATE areas SET generation_high = 2")  # a changed reference locks
    with psycopg.connect(head_url) as publisher, pytest.raises(
            psycopg.errors.LockNotAvailable):  # fmt: skip
        publisher.execute("SELECT id FROM generations WHERE id = 2 FOR UPDATE NOWAIT")
    renamer.rollback()
    renamer.close()
