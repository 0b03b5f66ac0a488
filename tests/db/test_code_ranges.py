"""Migration 0013 keeps the rule the GiST exclusion constraint kept, statement for
statement: random sequences of inserts and updates of areas' generation ranges are
accepted or refused alike by a database at 0012 (the exclusion constraint) and one at
the head (unique index on open codes plus the statement-level range check)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gridmap.db.locks import lock_areas_writers
from tests.conftest import before_and_after

CODES = ("500101", "500102")
# City and district codes share a length: one code at both levels is one code.
LEVELS = {"500101": ("district", "city"), "500102": ("district",)}
GENERATIONS = 5
SQUARE = "ST_Multi(ST_MakeEnvelope(106.5, 29.5, 106.6, 29.6, 4326))"
ROW = f"(%s, %s, 'x', %s, %s, {SQUARE}, ST_Transform({SQUARE}, 3857))"
INSERT = ("INSERT INTO areas (code, level, name, generation_low, generation_high, geom, "
          "geom_3857) VALUES ")  # fmt: skip


@dataclass(frozen=True)
class Insert:
    rows: tuple[tuple[str, int, int | None] | tuple[str, int, int | None, str], ...]
    """(code, low, high[, level]): district unless a level is given."""

    def run(self, conn: psycopg.Connection) -> None:
        params = [value for code, low, high, *level in self.rows
                  for value in (code, level[0] if level else "district", low, high)]
        conn.execute(INSERT + ", ".join([ROW] * len(self.rows)), params)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Close:
    """Set ``generation_high`` of a code's rows starting at ``low`` (None re-opens)."""

    code: str
    low: int
    high: int | None

    def run(self, conn: psycopg.Connection) -> None:
        conn.execute("UPDATE areas SET generation_high = %s WHERE code = %s "
                     "AND generation_low = %s", (self.high, self.code, self.low))  # fmt: skip


def _ranges() -> st.SearchStrategy[tuple[str, int, int | None, str]]:
    def row(code: str, low: int, length: int | None, city: bool
            ) -> tuple[str, int, int | None, str]:
        high = None if length is None else min(low + length, GENERATIONS)
        return code, low, high, LEVELS[code][city and len(LEVELS[code]) > 1]

    return st.builds(row, st.sampled_from(CODES), st.integers(1, GENERATIONS),
                     st.none() | st.integers(0, 2), st.booleans())  # fmt: skip


OPERATIONS = st.lists(
    st.one_of(
        st.builds(Insert, st.lists(_ranges(), min_size=1, max_size=2).map(tuple)),
        st.builds(Close, st.sampled_from(CODES), st.integers(1, GENERATIONS),
                  st.none() | st.integers(1, GENERATIONS)),
    ),
    min_size=1, max_size=8,
)  # fmt: skip


@pytest.fixture(scope="module")
def old_and_new(
    database_factory: Callable[..., str],
) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """Connections to a database at 0012 and one at the head, generations 1–5 in each."""
    with before_and_after(database_factory, "0012_layer_lock_order", GENERATIONS) as pair:
        yield pair


def _outcome(conn: psycopg.Connection, operation: Insert | Close) -> str:
    """'ok', or 'refused' for a range clash (any other error by its class); run in a
    savepoint of the caller's transaction, so a refused statement is undone alone."""
    try:
        with conn.transaction():
            operation.run(conn)
    except psycopg.errors.IntegrityError as exc:
        return "refused" if isinstance(exc, psycopg.errors.ExclusionViolation
                                       | psycopg.errors.UniqueViolation) else type(exc).__name__
    return "ok"


def _rows(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute("SELECT code, generation_low, generation_high FROM areas "
                        "ORDER BY 1, 2, 3 NULLS LAST").fetchall()  # fmt: skip


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(operations=OPERATIONS)
@example(operations=[Insert((("500101", 1, 1), ("500101", 2, None))), Close("500101", 1, 3)])
@example(operations=[Insert((("500101", 1, 2),)), Insert((("500101", 3, None),)),
                     Close("500101", 3, 3), Close("500101", 1, None)])
@example(operations=[Insert((("500101", 1, 1, "city"),)), Insert((("500101", 1, None),))])
def test_same_statements_accepted_and_refused(
    old_and_new: tuple[psycopg.Connection, psycopg.Connection],
    operations: list[Insert | Close],
) -> None:
    old, new = old_and_new
    with old.transaction(force_rollback=True), new.transaction(force_rollback=True):
        for operation in operations:
            assert _outcome(old, operation) == _outcome(new, operation), operation
            assert _rows(old) == _rows(new)


def test_the_strategy_reaches_both_outcomes(
    old_and_new: tuple[psycopg.Connection, psycopg.Connection],
) -> None:
    """The property above is not vacuous: these clash on both sides, and this does not."""
    old, new = old_and_new
    clash = Insert((("500101", 1, None), ("500101", 2, 3)))
    fine = Insert((("500101", 1, 1), ("500101", 2, None)))
    for conn in (old, new):
        with conn.transaction(force_rollback=True):
            assert _outcome(conn, clash) == "refused"
            assert _outcome(conn, fine) == "ok"
            assert len(_rows(conn)) == 2



def test_writers_take_the_lock_before_any_row(database_factory: Callable[..., str]) -> None:
    """A writer that is not a publisher waits for the publishers' lock before it locks
    a row, so a publisher holding the lock can still update that row (no deadlock)."""
    url = database_factory()
    with psycopg.connect(url) as setup:
        setup.execute("INSERT INTO generations (id, active) SELECT g, g = 1 "
                      "FROM generate_series(1, 3) g")  # fmt: skip
        Insert((("500101", 1, None),)).run(setup)
    publisher, other = psycopg.connect(url), psycopg.connect(url)
    errors: list[BaseException] = []

    def other_writer() -> None:
        try:
            other.execute("UPDATE areas SET generation_high = 1 WHERE code = '500101'")
            other.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            other.rollback()

    try:
        lock_areas_writers(publisher)
        worker = threading.Thread(target=other_writer)
        worker.start()
        time.sleep(0.5)  # the other writer is now waiting (for the lock, not a row)
        assert worker.is_alive()
        publisher.execute("SET lock_timeout = '5s'")
        publisher.execute("UPDATE areas SET generation_high = 2 WHERE code = '500101'")
        publisher.commit()
        worker.join(10)
        assert not worker.is_alive() and errors == []
        rows = _rows(publisher)
    finally:
        publisher.close()
        other.close()
    assert rows == [("500101", 1, 1)]  # the other writer came second


def test_renames_do_not_wait_for_publishers(database_factory: Callable[..., str]) -> None:
    url = database_factory()
    with psycopg.connect(url) as setup:
        setup.execute("INSERT INTO generations (id, active) VALUES (1, true)")
        Insert((("500101", 1, None),)).run(setup)
    with psycopg.connect(url) as publisher, psycopg.connect(url) as other:
        lock_areas_writers(publisher)
        other.execute("SET lock_timeout = '2s'")
        other.execute("UPDATE areas SET name = 'renamed' WHERE code = '500101'")
        other.commit()
        publisher.rollback()
