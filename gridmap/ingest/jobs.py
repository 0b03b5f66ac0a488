"""Import jobs (the upload path): save the file, check it in the background, commit.

A job row records the file, options, progress and the report; the file stays in
``<data_dir>/imports/<job folder>/`` so that committing reads exactly what was checked.
The process that checked a job keeps its plan: committing there publishes it without
reading and checking the file again, unless the file or the active generation changed
since (then, and in any other process, the commit prepares the import afresh).
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import psycopg
from psycopg.types.json import Jsonb

from gridmap.config import get_settings
from gridmap.db.refusals import REFUSALS, refused
from gridmap.errors import ConflictError, GridmapError, InvalidInputError, NotFoundError
from gridmap.ingest.checks import Report, Thresholds
from gridmap.ingest.publish import Plan, commit_plan, prepare_import
from gridmap.ingest.reader import IMPORT_LEVELS, ReadOptions

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_KEPT_PLANS = 2  # a 65,000-grid plan holds its geometries: tens of MB each
_JOB_COLUMNS = ("id", "level", "filename", "status", "progress", "message", "report",
                "generation_id", "created_at", "updated_at")  # fmt: skip


def upload_dir() -> Path:
    """Where uploaded files are kept."""
    return get_settings().data_dir / "imports"


def safe_filename(name: str) -> str:
    """The upload's file name, refused if it tries to leave the upload folder."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise InvalidInputError(
            f"upload file name {name!r} is not a plain file name (path escapes are refused)",
            details=[{"field": "file", "value": name}],
        )
    return re.sub(r"[^\w.\-\u4e00-\u9fff]", "_", name)


def save_upload(filename: str, stream: BinaryIO, max_bytes: int | None = None) -> Path:
    """Copy an uploaded stream into a fresh folder, stopping at the size limit."""
    limit = max_bytes or get_settings().import_max_bytes
    name = safe_filename(filename)
    folder = upload_dir() / uuid.uuid4().hex
    folder.mkdir(parents=True)
    target = folder / name
    written = 0
    with target.open("wb") as out:
        while chunk := stream.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                out.close()
                shutil.rmtree(folder, ignore_errors=True)
                raise InvalidInputError(
                    f"{name}: upload is over the import size limit of {limit:,} bytes",
                    details=[{"file": name, "problem": "too_large"}],
                )
            out.write(chunk)
    return target


def create_job(
    conn: psycopg.Connection, level: str, filename: str, stream: BinaryIO,
    options: dict[str, Any],
) -> int:
    """Check the level and options, save the uploaded file and register a job for it;
    returns its id. Nothing is kept when any of that fails."""
    if level not in IMPORT_LEVELS:
        raise InvalidInputError(f"unknown level {level!r}; one of {', '.join(IMPORT_LEVELS)}",
                                details=[{"field": "level", "value": level}])  # fmt: skip
    _thresholds(options)
    path = save_upload(filename, stream)
    try:
        return _insert_job(conn, level, path, options)
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise


def _insert_job(conn: psycopg.Connection, level: str, path: Path, options: dict[str, Any]
                ) -> int:  # fmt: skip
    row = conn.execute(
        "INSERT INTO import_jobs (level, filename, path, options) VALUES (%s, %s, %s, %s)"
        " RETURNING id",
        (level, path.name, str(path), Jsonb(options)),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def record_command_line_commit(conn: psycopg.Connection, level: str, path: Path,
                               report: Report) -> int:  # fmt: skip
    """Record a publish by ``gridmap import --commit`` as a committed import, so that the
    imports listed over the API hold the command line's publishes beside the uploads',
    each with its report (the diff and the re-assignment summary); returns its id.
    Commits ``conn``. ``path`` is the user's own file: nothing may ever delete it."""
    row = conn.execute(
        "INSERT INTO import_jobs (level, filename, path, options, status, progress, message,"
        " report, generation_id) VALUES (%s, %s, %s, %s, 'committed', 1, %s, %s, %s)"
        " RETURNING id",
        (level, path.name, str(path.resolve()), Jsonb({"source": "command line"}),
         f"from the command line: {_committed_message(report)}", Jsonb(report.to_dict()),
         report.generation_id),
    ).fetchone()  # fmt: skip
    conn.commit()
    assert row is not None
    return int(row[0])


def list_jobs(conn: psycopg.Connection, *, status: str | None = None, limit: int = 50
              ) -> list[dict[str, Any]]:  # fmt: skip
    """The most recent jobs first (without their reports), optionally of one status
    (as :func:`get_job` shows it)."""
    rows = conn.execute(
        f"SELECT * FROM ({_SELECT_JOBS}) j WHERE %(status)s::text IS NULL OR CASE WHEN"
        " stalled THEN 'failed' ELSE status END = %(status)s ORDER BY id DESC LIMIT %(limit)s",
        {"stalled": STALLED_AFTER, "status": status, "limit": limit},
    ).fetchall()  # fmt: skip
    return [{**_job(row), "report": None} for row in rows]


STALLED_AFTER = timedelta(minutes=10)
"""A check reports progress every few seconds at most: one silent this long was cut off
(its server stopped) and will never finish."""
_SELECT_JOBS = (f"SELECT {', '.join(_JOB_COLUMNS)}, status = 'checking' AND updated_at"
                " < now() - %(stalled)s AS stalled FROM import_jobs")  # fmt: skip


def get_job(conn: psycopg.Connection, job_id: int) -> dict[str, Any]:
    """The job as a dict (report included); a check cut off by a stopped server shows
    as failed."""
    row = conn.execute(f"SELECT * FROM ({_SELECT_JOBS}) j WHERE id = %(id)s",
                       {"stalled": STALLED_AFTER, "id": job_id}).fetchone()  # fmt: skip
    if row is None:
        raise NotFoundError(f"import {job_id} not found")
    return _job(row)


def _job(row: tuple[Any, ...]) -> dict[str, Any]:
    job = dict(zip(_JOB_COLUMNS, row[:-1], strict=True))
    if row[-1]:
        job.update(status="failed", message=f"the check stopped at {job['progress']:.0%} "
                   f"({job['message']}) and made no progress for {STALLED_AFTER}: the server "
                   "was probably restarted; upload the file again")  # fmt: skip
    return job


def _update(url: str, job_id: int, **values: Any) -> None:
    sets = ", ".join(f"{k} = %({k})s" for k in values)  # keys are ours, never user input
    params = {k: Jsonb(v) if isinstance(v, dict) else v for k, v in values.items()}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"UPDATE import_jobs SET {sets}, updated_at = now() WHERE id = %(id)s",
                     {**params, "id": job_id})  # fmt: skip


def _options(job: dict[str, Any], conn: psycopg.Connection) -> tuple[Path, ReadOptions, Thresholds]:
    row = conn.execute("SELECT path, options FROM import_jobs WHERE id = %s",
                       (job["id"],)).fetchone()  # fmt: skip
    assert row is not None
    opts: dict[str, Any] = row[1] or {}
    read = ReadOptions.from_dict({**opts, "max_bytes": get_settings().import_max_bytes,
                                  "max_vertices": get_settings().import_max_vertices})
    return Path(row[0]), read, _thresholds(opts)


def _thresholds(options: dict[str, Any]) -> Thresholds:
    """The check thresholds among a job's options (the rest are read options)."""
    known = {k: v for k, v in options.items() if k in Thresholds.__dataclass_fields__}
    for name, value in known.items():
        if name != "fix" and not (isinstance(value, int | float) and value >= 0):
            raise InvalidInputError(f"{name} must be a number ≥ 0, not {value!r}",
                                    details=[{"field": name, "value": value}])  # fmt: skip
    if known.get("outside_fraction", 0) > 1:
        raise InvalidInputError("outside_fraction is a share of the area, between 0 and 1",
                                details=[{"field": "outside_fraction"}])  # fmt: skip
    return Thresholds(**known)


@dataclass(frozen=True)
class _FileState:
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> _FileState | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return cls(stat.st_size, stat.st_mtime_ns)


class _PlanCache:
    """The last few checked plans of this process, by job id, with their file's state."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._plans: OrderedDict[int, tuple[Plan, _FileState]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, job_id: int, plan: Plan, path: Path) -> None:
        state = _FileState.of(path)
        if state is None:
            return
        with self._lock:
            self._plans[job_id] = (plan, state)
            while len(self._plans) > self._size:
                self._plans.popitem(last=False)

    def take(self, job_id: int, path: Path) -> Plan | None:
        """The job's plan if this process made it and the file is as it was checked."""
        with self._lock:
            kept = self._plans.pop(job_id, None)
        if kept is None or _FileState.of(path) != kept[1]:
            return None
        return kept[0]


_plans = _PlanCache(_KEPT_PLANS)


def run_check(url: str, job_id: int) -> None:
    """Read and check the job's file, recording progress and the report (never raises)."""
    with psycopg.connect(url) as conn:
        job = get_job(conn, job_id)
        path, read, thresholds = _options(job, conn)
        conn.rollback()
        _update(url, job_id, status="checking", progress=0.0, message="reading")

        def progress(fraction: float, message: str) -> None:
            _update(url, job_id, progress=round(fraction, 3), message=message)

        try:
            plan = prepare_import(conn, path, job["level"], read, thresholds, progress)
        except GridmapError as exc:
            _update(url, job_id, status="failed", message=_for_upload(exc.message, path))
            return
        except Exception as exc:  # a job must never stay "checking"
            log.exception("import %s: checking %s failed", job_id, path.name)
            _update(url, job_id, status="failed", message=_for_upload(
                f"{path.name}: could not be read or checked ({type(exc).__name__}: {exc})",
                path))  # fmt: skip
            return
        if isinstance(plan, Plan):  # feature plans are cheap to make again
            _plans.put(job_id, plan, path)
        _update(url, job_id, status="checked", progress=1.0, report=plan.report.to_dict(),
                message=plan.report.counts())


def commit_job(url: str, job_id: int) -> dict[str, Any]:
    """Publish a checked job (errors in its report block this); returns the job."""
    with psycopg.connect(url) as conn:
        job = get_job(conn, job_id)
        if job["status"] != "checked":
            raise ConflictError(f"import {job_id} is {job['status']}; only a checked import "
                                "can be committed")  # fmt: skip
        if (job["report"] or {}).get("errors"):
            raise InvalidInputError(
                f"import {job_id}: {job['report']['errors']} error(s) in the report block commit"
            )
        path, read, thresholds = _options(job, conn)
        stale = _checked_against_another(conn, job)
        if stale:
            _check_again(url, conn, job, path, read, thresholds, *stale)
        # Not stale: a kept plan is the one the job's report describes (a publish since
        # then is caught by the commit itself, as ConflictError below).
        kept = _plans.take(job_id, path)
        plan = kept if kept is not None else \
            prepare_import(conn, path, job["level"], read, thresholds)  # fmt: skip
        conn.rollback()
        _update(url, job_id, status="committing", message="publishing")
        try:
            report = commit_plan(conn, plan)
        except REFUSALS as exc:
            conn.rollback()
            error = refused(exc, f"import {job_id}")
            _update(url, job_id, status="checked", message=f"commit failed: {error.message}")
            raise error from exc
        except ConflictError:  # another import was published since ours was checked
            conn.rollback()
            _update(url, job_id, status="checked")
            stale = _checked_against_another(conn, job)
            if stale:
                _check_again(url, conn, job, path, read, thresholds, *stale)
            raise
        except BaseException as exc:
            message = exc.message if isinstance(exc, GridmapError) else type(exc).__name__
            _update(url, job_id, status="checked", message=f"commit failed: {message}")
            raise
        _update(url, job_id, status="committed", progress=1.0, report=report.to_dict(),
                generation_id=report.generation_id,
                message=_committed_message(report))
        return get_job(conn, job_id)


def _committed_message(report: Report) -> str:
    if report.unchanged:
        return f"nothing changed: generation {report.generation_id} stays active"
    if report.generation_id is not None:
        return f"generation {report.generation_id} active"
    return "committed"


def _checked_against_another(conn: psycopg.Connection, job: dict[str, Any]
                             ) -> tuple[int, int] | None:  # fmt: skip
    """(the generation the job was checked against, the active one) when they differ;
    None when they are the same or the job's level has no generations."""
    checked_against = ((job["report"] or {}).get("diff") or {}).get("previous_generation")
    row = conn.execute("SELECT id FROM generations WHERE active").fetchone()
    conn.rollback()
    active = None if row is None else int(row[0])
    if checked_against is None or active is None or checked_against == active:
        return None
    return int(checked_against), active


def _check_again(
    url: str, conn: psycopg.Connection, job: dict[str, Any], path: Path, read: ReadOptions,
    thresholds: Thresholds, checked_against: int, active: int,
) -> NoReturn:
    """Check the job again against the active generation (the job gets the new report)
    and refuse the commit, so that what is committed is what was reviewed."""
    plan = prepare_import(conn, path, job["level"], read, thresholds)
    conn.rollback()
    if isinstance(plan, Plan):
        _plans.put(job["id"], plan, path)
    _update(url, job["id"], status="checked", report=plan.report.to_dict(),
            message=f"checked again against generation {active}: {plan.report.counts()}")
    raise ConflictError(
        f"generation {active} was activated after import {job['id']} was checked against "
        f"generation {checked_against}; it has been checked again against generation "
        f"{active}: review its new report and commit again"
    )


_OPTIONS = re.compile("--(" + "|".join(
    name.replace("_", "-") for name in (*ReadOptions.__dataclass_fields__,
                                        *Thresholds.__dataclass_fields__)) + r")\b")
"""Options named after the fields of ReadOptions and Thresholds (the CLI's options; an
upload's form fields carry the same names)."""


def _for_upload(message: str, path: Path) -> str:
    """``message`` as an upload's user reads it: the CLI's options as the form fields
    of the same names, and no server folder (users know only the file's name)."""
    message = _OPTIONS.sub(lambda m: f"the {m.group(1).replace('-', '_')} field", message)
    return message.replace(f"{path.parent}/", "").replace(str(path.parent), "")
