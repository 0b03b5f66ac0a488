"""Group commit of intake: a batch is one transaction; nothing unstored is acknowledged.

Failures are made by the real PostgreSQL of the module's database: a CHECK constraint
one report violates, a trigger that kills its own connection in the middle of the
INSERT, and a deferred trigger that kills it during COMMIT.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future

import psycopg
import pytest
from sqlalchemy import Engine

from gridmap.errors import InvalidInputError
from gridmap.events.batch import BatchFailedError, CommitFailedError, IntakeBatcher
from gridmap.events.intake import Intake, Report, store_report

KILL_SELF = """
CREATE FUNCTION test_kill_self() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_terminate_backend(pg_backend_pid());
  RETURN NEW;
END $$;
CREATE TRIGGER test_kill_mid_insert BEFORE INSERT ON events FOR EACH ROW
  WHEN (NEW.description = 'kill mid-insert') EXECUTE FUNCTION test_kill_self();
CREATE CONSTRAINT TRIGGER test_kill_at_commit AFTER INSERT ON events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (NEW.description = 'kill at commit') EXECUTE FUNCTION test_kill_self();
ALTER TABLE events ADD CONSTRAINT test_no_poison CHECK (description <> 'poison');
"""


@pytest.fixture(scope="module", autouse=True)
def _failure_makers(events_db: str) -> None:
    with psycopg.connect(events_db) as conn:
        conn.execute(KILL_SELF)


def _report(point: tuple[str, float, float], description: str = "",
            category: str = "urban.appearance.exposed_garbage") -> Report:
    _, lon, lat = point
    return Report(source="resident", category=category, lon=lon, lat=lat,
                  description=description)


def _count(url: str, where: str = "true") -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT count(*) FROM events WHERE {where}").fetchone()[0])


def _events_version(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version FROM layer_versions WHERE layer = 'events'")
        return int(row.fetchone()[0])


@pytest.fixture
def batcher(events_engine: Engine) -> Iterator[IntakeBatcher]:
    """A batcher not yet started: what is submitted before ``start()`` is one batch."""
    b = IntakeBatcher(events_engine)
    yield b
    b.stop()


def _results(futures: list[Future]) -> list[object]:
    out: list[object] = []
    for f in futures:
        exc = f.exception(timeout=60)
        out.append(exc if exc is not None else f.result())
    return out


def test_a_batch_is_stored_by_one_statement(batcher, events_db, grid_points, clock) -> None:
    before, version = _count(events_db), _events_version(events_db)
    futures = [batcher.submit(_report(grid_points[i], f"batch {i}"), now=clock.now())
               for i in range(200, 220)]
    batcher.start()
    results = _results(futures)
    assert all(isinstance(r, Intake) and r.created for r in results), results
    assert _count(events_db) == before + 20
    assert _events_version(events_db) == version + 1, "one INSERT, one map invalidation"
    ids = [r.event.id for r in results]  # type: ignore[attr-defined]
    assert ids == sorted(ids), "stored in the order submitted"
    with psycopg.connect(events_db) as conn:
        audit = conn.execute("SELECT event_id, action FROM event_transitions "
                             "WHERE event_id = ANY(%s) ORDER BY id", (ids,)).fetchall()
    assert [a for e, a in audit if e == ids[0]] == ["report", "assign"]
    assert {e for e, _ in audit} == set(ids)


def test_duplicates_inside_a_batch_are_linked(batcher, events_db, grid_points, clock,
                                              session) -> None:
    point = grid_points[230]
    futures = [batcher.submit(_report(point, "first", "urban.advertising.illegal_ad"),
                              now=clock.now()),
               batcher.submit(_report(grid_points[231], "elsewhere",
                                      "urban.advertising.illegal_ad"), now=clock.now()),
               batcher.submit(_report(point, "same place", "urban.advertising.illegal_ad"),
                              now=clock.now())]
    batcher.start()
    first, elsewhere, same = _results(futures)
    assert isinstance(first, Intake) and isinstance(same, Intake)
    assert isinstance(elsewhere, Intake) and elsewhere.original is None
    assert same.original is not None and same.original.id == first.event.id
    assert same.event.duplicate_of == first.event.id
    # The same reports one at a time give the same links.
    one = store_report(session, _report(point, "one", "urban.construction.debris"),
                       now=clock.now())
    two = store_report(session, _report(point, "two", "urban.construction.debris"),
                       now=clock.now())
    session.rollback()
    assert one.original is None and two.original is not None


def test_an_invalid_report_fails_alone(batcher, events_db, grid_points, clock) -> None:
    before = _count(events_db)
    futures = [batcher.submit(_report(grid_points[240], "good 1"), now=clock.now()),
               batcher.submit(_report(grid_points[241], "bad", "no.such.category"),
                              now=clock.now()),
               batcher.submit(_report(grid_points[242], "good 2"), now=clock.now())]
    batcher.start()
    good1, bad, good2 = _results(futures)
    assert isinstance(bad, InvalidInputError) and "category" in str(bad)
    assert isinstance(good1, Intake) and isinstance(good2, Intake)
    assert _count(events_db) == before + 2


def test_a_constraint_violation_fails_the_whole_batch(batcher, events_db, grid_points,
                                                      clock) -> None:
    before = _count(events_db)
    futures = [batcher.submit(_report(grid_points[250 + i], d), now=clock.now())
               for i, d in enumerate(["ok a", "poison", "ok b"])]
    batcher.start()
    results = _results(futures)
    assert all(isinstance(r, BatchFailedError) for r in results), results
    assert _count(events_db) == before, "nothing of a failed batch is stored"
    # Alone, the good ones are stored and the poisoned one is refused.
    again = [batcher.submit(_report(grid_points[250], "ok a"), now=clock.now())]
    assert isinstance(_results(again)[0], Intake)


def test_a_connection_killed_mid_batch_fails_every_report(batcher, events_db, grid_points,
                                                          clock) -> None:
    before = _count(events_db)
    futures = [batcher.submit(_report(grid_points[260 + i], d), now=clock.now())
               for i, d in enumerate(["ok c", "kill mid-insert", "ok d"])]
    batcher.start()
    results = _results(futures)
    assert all(isinstance(r, BatchFailedError) for r in results), results
    assert _count(events_db) == before
    later = batcher.submit(_report(grid_points[263], "after the kill"), now=clock.now())
    assert isinstance(_results([later])[0], Intake), "the pool recovers"


def test_a_connection_killed_at_commit_acknowledges_nothing(batcher, events_db, grid_points,
                                                            clock) -> None:
    before = _count(events_db)
    futures = [batcher.submit(_report(grid_points[270 + i], d), now=clock.now())
               for i, d in enumerate(["ok e", "kill at commit", "ok f"])]
    batcher.start()
    results = _results(futures)
    assert all(isinstance(r, CommitFailedError) for r in results), results
    assert _count(events_db) == before
