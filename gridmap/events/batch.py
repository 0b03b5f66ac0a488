"""Group commit for event intake: reports arriving together share one transaction.

Every report costs a transaction — a commit, and the events table's map-invalidation
trigger, ~1 ms of PostgreSQL CPU per INSERT statement and a row lock held to the commit
that serialises every intake transaction. :class:`IntakeBatcher` stores the reports that
arrive while the previous batch is being written with one duplicate query, one INSERT
and one commit (:func:`gridmap.events.intake.write_staged`). Under light load a batch is
one report and nothing waits; under heavy load batches grow by themselves.

Acknowledged means stored. A report's future is resolved only after its batch commits:
- a report that is invalid (validation, assignment) fails alone, before anything is
  written;
- if writing the batch fails (a value the database refuses, a killed connection), the
  transaction is rolled back and every report of the batch fails with
  :class:`BatchFailedError`, which says to store it on its own (the API then replays it
  through the ordinary route, one transaction per report);
- if the commit itself fails, its outcome is unknown: every report fails with
  :class:`CommitFailedError` and must not be acknowledged (nor retried blindly);
- a report's answer is built after the commit; if that fails (a bug), its future holds
  :class:`AnswerFailedError`: stored, so it must not be stored again.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from gridmap.errors import GridmapError
from gridmap.events import intake
from gridmap.lookup.service import LookupService

log = logging.getLogger("gridmap.events.batch")
MAX_BATCH = 256


class BatchFailedError(GridmapError):
    """Writing the batch failed; nothing of it is stored. Store the report on its own."""


class CommitFailedError(GridmapError):
    """The commit failed: the report may or may not be stored. Do not acknowledge it."""


class AnswerFailedError(Exception):
    """The report is stored, but building its answer failed (a bug, not bad input)."""


Answer = Callable[[Session, intake.Intake], Any]
Done = Callable[[Any, BaseException | None], None]


@dataclass
class _Job:
    report: intake.Report
    now: datetime
    answer: Answer | None
    done: Done
    options: dict[str, Any]
    staged: intake.Staged | None = None
    settled: bool = False

    def settle(self, result: Any, error: BaseException | None = None) -> None:
        """Tell the caller, once."""
        if not self.settled:
            self.settled = True
            self.done(result, error)


class IntakeBatcher:
    """One writer thread per process storing queued reports in shared transactions."""

    def __init__(self, engine: Engine, *, lookup: LookupService | None = None,
                 max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.lookup = lookup
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gridmap-intake",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the queued reports, then stop the writer thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def submit(self, report: intake.Report, *, now: datetime, answer: Answer | None = None,
               **options: Any) -> Future[Any]:
        """Queue ``report``; its future is resolved once its batch is committed.

        The result is ``answer(session, stored)`` (built after the commit, e.g. the public
        view), or the :class:`~gridmap.events.intake.Intake` itself without ``answer``.
        ``options`` go to :func:`gridmap.events.intake.stage_report` (e.g. ``principal``).
        """
        future: Future[Any] = Future()

        def done(result: Any, error: BaseException | None) -> None:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        self.submit_with(report, now=now, answer=answer, done=done, **options)
        return future

    def submit_with(self, report: intake.Report, *, now: datetime, done: Done,
                    answer: Answer | None = None, **options: Any) -> None:
        """:meth:`submit` with a callback: ``done(result, None)`` or ``done(None, error)``,
        called once in the writer thread (an event loop's futures cost less than
        ``concurrent.futures`` wrapped for asyncio)."""
        self._queue.put(_Job(report, now, answer, done, options))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            jobs = [first]
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
            try:
                self.store(jobs)
            except BaseException as exc:  # never leave a caller waiting
                log.exception("intake batch failed unexpectedly")
                _fail(jobs, BatchFailedError(f"intake batch failed: {type(exc).__name__}"))

    def store(self, jobs: list[_Job]) -> None:
        """Stage, write and commit ``jobs`` in one transaction; resolve every future."""
        session = Session(bind=self._connection(), expire_on_commit=False)
        try:
            ready = self._stage(session, jobs)
            if not ready:
                return
            try:
                stored = intake.write_staged(session, [j.staged for j in ready])  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 - any failure fails the whole batch
                self._release(session)
                log.warning("intake batch of %d not stored: %s", len(ready), exc)
                _fail(ready, BatchFailedError(
                    "the batch this report was in could not be stored; store it alone"))
                return
            try:
                session.commit()
            except Exception as exc:  # noqa: BLE001 - outcome unknown: acknowledge nothing
                self._release(session)
                log.warning("intake commit of %d failed: %s", len(ready), exc)
                _fail(ready, CommitFailedError(
                    "the database is unavailable; try again shortly"))
                return
            self._resolve(session, ready, stored)
        finally:
            session.close()

    def _connection(self) -> Connection:
        """The writer's own connection, kept between batches.

        A checkout per batch cost a round trip (the pool's pre-ping) and ~0.1 ms of CPU;
        after a failure the connection goes back to the pool, whose pre-ping tests it.
        """
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _release(self, session: Session) -> None:
        """Roll back after a failure and hand the connection back to the pool."""
        _rollback(session)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _stage(self, session: Session, jobs: list[_Job]) -> list[_Job]:
        """Validate and assign each job; failures fail alone (nothing is written yet)."""
        ready = []
        for job in jobs:
            try:
                job.staged = intake.stage_report(session, job.report, now=job.now,
                                                 lookup=self.lookup, **job.options)
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                if not isinstance(exc, GridmapError):  # a failed read aborts the transaction
                    _rollback(session)
                job.settle(None, exc)
                continue
            ready.append(job)
        return ready

    def _resolve(self, session: Session, jobs: list[_Job],
                 stored: list[intake.Intake | None]) -> None:
        for job, result in zip(jobs, stored, strict=True):
            if result is None:  # a repeated idempotency key: the caller reads the original
                job.settle(None, BatchFailedError(
                    "idempotency key already stored; store it alone"))
                continue
            try:
                answer = result if job.answer is None else job.answer(session, result)
            except Exception as exc:  # noqa: BLE001 - stored: must not be stored again
                log.exception("answering stored event %s failed", result.event.id)
                job.settle(None, AnswerFailedError(
                    f"event {result.event.id} is stored, but its answer failed: {exc}"))
                continue
            job.settle(answer)


def _rollback(session: Session) -> None:
    try:
        session.rollback()
    except Exception:  # noqa: BLE001 - a dead connection cannot roll back
        log.info("rollback after a failed intake batch failed", exc_info=True)


def _fail(jobs: list[_Job], exc: Exception) -> None:
    for job in jobs:
        job.settle(None, exc)
