"""Publishing a checked layer as a new generation: diff, stage, activate, re-assign.

The write runs in one transaction: a new (inactive) generation is created, the added
and changed areas are COPYed in (the bulk loader's COPY machinery), removed and
changed rows are closed (``generation_high`` = previous generation), unchanged rows
keep their identity, the generation is activated, features are re-assigned and
``NOTIFY gridmap_generation`` is sent — all visible at COMMIT or not at all.

A dry run (:func:`prepare_import`) makes a plan that :func:`commit_plan` writes later
(the upload API's two steps). :func:`check_and_publish` (``gridmap import --commit``)
stages the areas while the checks run and activates them only if the checks pass.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg

from gridmap.db.locks import lock_areas_writers
from gridmap.db.long_writes import configure_long_write
from gridmap.errors import ConflictError, InvalidInputError, NotFoundError
from gridmap.ingest import bulk
from gridmap.ingest.checks import (
    CHILD_LEVEL,
    Finding,
    Report,
    Thresholds,
    check_layer,
    error_details,
    locations,
)
from gridmap.ingest.compare import (
    Diff,
    Published,
    children_left,
    diff_layer,
    fetch_published,
    match_features,
    touched_parents,
    unchanged_features,
    workers_moving_in,
)
from gridmap.ingest.features import (
    FEATURE_LEVELS,
    FeaturePlan,
    commit_features,
    prepare_features,
)
from gridmap.ingest.gcpause import gc_paused
from gridmap.ingest.reader import (
    AREA_LEVELS,
    LayerRead,
    Progress,
    ReadOptions,
    no_progress,
    read_layer,
)
from gridmap.ingest.reassign import reassign_after_grid_change
from gridmap.layers import announce_deferred, defer_layer_changes

NOTIFY_CHANNEL = "gridmap_generation"


@dataclass
class Plan:
    """A checked layer ready to publish, and how it differs from the active generation."""

    report: Report
    frame: gpd.GeoDataFrame
    previous_generation: int
    diff: Diff


def prepare_import(
    conn: psycopg.Connection,
    path: Path | str,
    level: str,
    options: ReadOptions | None = None,
    thresholds: Thresholds | None = None,
    progress: Progress | None = None,
) -> Plan | FeaturePlan:
    """Read, check and diff a file against the active generation (a dry run).

    Buildings, facilities and workers are checked by :mod:`gridmap.ingest.features`
    (their diff counts rows to insert and to update). When the active generation's
    areas of ``level`` passed these checks when they were published (see
    :func:`commit_plan`), sibling overlaps and containment are re-checked only around
    the areas whose geometry or parent differs from it.

    Raises
    ------
    InvalidInputError
        The file cannot be read, or ``level`` is not an area level.
    NotFoundError
        Nothing is published yet (no active generation).
    """
    report_progress = progress or no_progress
    if level in FEATURE_LEVELS:
        return prepare_features(conn, path, level, options, report_progress,
                                fix=(thresholds or Thresholds()).fix)  # fmt: skip
    matched = _read_and_match(conn, path, level, options, report_progress)
    report, frame = _check(matched, level, thresholds, report_progress)
    report_progress(0.85, "comparing with the active generation")
    identical = matched.identical
    repaired = _repaired(matched.read.frame, frame)
    if repaired.size:  # --fix replaced these geometries: compare them again
        identical = identical.copy()
        identical[repaired] = match_features(matched.published.old, frame.iloc[repaired])[1]
    diff = _diff(conn, level, frame, matched, identical, thresholds)
    plan = _plan(report, frame, matched.published, diff)
    report_progress(1.0, "checked")
    return plan


@dataclass
class _Matched:
    """A file read, and its features matched with the active generation's areas."""

    read: LayerRead
    published: Published
    position: np.ndarray
    """Per feature, its code's row in ``published.old`` (-1: a new code)."""
    identical: np.ndarray
    """Per feature, whether its geometry is that row's (up to ring orientation)."""
    unchanged: np.ndarray | None
    """What :func:`~gridmap.ingest.compare.unchanged_features` says (None: the
    published areas were never checked)."""


def _read_and_match(
    conn: psycopg.Connection, path: Path | str, level: str, options: ReadOptions | None,
    progress: Progress,
) -> _Matched:
    if level not in AREA_LEVELS:
        raise InvalidInputError(
            f"unknown level {level!r}; one of {', '.join((*AREA_LEVELS, *FEATURE_LEVELS))}",
            details=[{"field": "level", "value": level}],
        )
    # The database sends its areas (another process) while this one reads the file.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(fetch_published, conn, level)
        read = read_layer(path, level, options, lambda f, m: progress(f * 0.5, m))
        published = pending.result()
    _parent_from_the_only_city(read, published)
    with gc_paused():
        position, identical = match_features(published.old, read.frame, read.wkb)
        unchanged = unchanged_features(published, read.frame, position, identical, level)
    return _Matched(read, published, position, identical, unchanged)


def _diff(conn: psycopg.Connection, level: str, frame: gpd.GeoDataFrame, matched: _Matched,
          identical: np.ndarray, thresholds: Thresholds | None) -> Diff:  # fmt: skip
    """The layer's diff against the published generation, with the children its removed
    and reshaped areas would leave behind."""
    diff = diff_layer(frame, matched.published, matched.position, identical)
    children_left(conn, level, matched.published, frame, diff,
                  (thresholds or Thresholds()).outside_fraction)  # fmt: skip
    workers_moving_in(conn, level, matched.published, frame, diff)
    return diff


def _parent_from_the_only_city(read: LayerRead, published: Published) -> None:
    """Districts read with no parent field belong to the city when there is one (their
    codes do not start with its code, so the reader cannot tell)."""
    if read.fields.get("parent") is None and published.parents.codes.size == 1 and \
            read.frame.parent_code.isna().all():  # fmt: skip
        city = str(published.parents.codes[0])
        read.frame["parent_code"] = city
        read.fields["parent"] = f"(the only city, {city})"


def _check(
    matched: _Matched, level: str, thresholds: Thresholds | None, progress: Progress
) -> tuple[Report, gpd.GeoDataFrame]:
    """:func:`check_layer` on the matched file (CPU work on one file, never a wait for
    the database: the collector stays paused)."""
    with gc_paused():
        progress(0.6, "checking")
        return check_layer(
            matched.read, level, matched.published.parents, thresholds,
            unchanged=matched.unchanged,
            touched_parents=touched_parents(matched.published, matched.position,
                                             matched.unchanged),
        )  # fmt: skip


def _active_generation(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT id FROM generations WHERE active").fetchone()
    if row is None:
        raise NotFoundError("no active generation: load a division first (gridmap sample)")
    return int(row[0])


def _repaired(read: gpd.GeoDataFrame, checked: gpd.GeoDataFrame) -> np.ndarray:
    """Indexes whose geometry the checks replaced (``--fix``)."""
    before = read.geometry.to_numpy()
    after = checked.geometry.to_numpy()
    return np.array([i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a is not b],
                    dtype=int)  # fmt: skip


def _plan(report: Report, frame: gpd.GeoDataFrame, published: Published, diff: Diff) -> Plan:
    report.diff = diff.summary
    report.findings += _diff_warnings(report.level, frame, diff)
    return Plan(report, frame, published.generation, diff)


def _diff_warnings(level: str, frame: gpd.GeoDataFrame, diff: Diff) -> list[Finding]:
    """What publishing the diff would leave for later: children without their parent or
    outside it (import the level below next), new grids without a worker."""
    child = CHILD_LEVEL.get(level)
    out = [Finding("warning", "orphaned_children",
                   f"removing {left.code} leaves {left.children:,} active {child}(s) naming "
                   f"it as their parent (e.g. {', '.join(left.examples)}): import the "
                   f"{child} level next", None, left.code, left.location)
           for left in diff.orphaning]  # fmt: skip
    out += [Finding("warning", "children_outside",
                    f"the new boundary of {left.code} leaves {left.children:,} of its active "
                    f"{child}(s) partly outside it (e.g. {', '.join(left.examples)}): "
                    f"import the {child} level next", None, left.code, left.location)
            for left in diff.stranded]  # fmt: skip
    unstaffed = np.setdiff1d(diff.added, diff.staffed)
    if level == "grid" and unstaffed.size:
        codes = frame.code.to_numpy(dtype=object)[unstaffed]
        first = np.asarray(frame.geometry.to_numpy(), dtype=object)[unstaffed[:1]]
        out.append(Finding(
            "warning", "no_worker",
            f"{codes.size:,} new grid(s) have no grid worker yet (e.g. "
            f"{', '.join(map(str, codes[:3]))}): their events go to the community's grid "
            "leader until workers are assigned (gridmap import worker)", None, codes[0],
            locations(first)[0],
        ))  # fmt: skip
    return out


def _reassignment_warnings(summary: dict[str, Any]) -> list[Finding]:
    """What re-assignment could not do: workers whose grid was removed with no new grid
    covering it (they keep the removed grid's code until assigned again)."""
    unplaced = summary.get("workers_unplaced") or []
    if not unplaced:
        return []
    named = ", ".join(f"{u['worker']} (grid {u['grid']})" for u in unplaced[:5])
    return [Finding(
        "warning", "worker_unplaced",
        f"{len(unplaced):,} worker(s) lost their grid and no new grid covers it, so they "
        f"were not re-assigned: {named}{' …' if len(unplaced) > 5 else ''}; assign them "
        "to grids (gridmap import worker)", None, unplaced[0]["grid"],
    )]  # fmt: skip


def commit_plan(
    conn: psycopg.Connection,
    plan: Plan | FeaturePlan,
    *,
    description: str = "",
    progress: Progress | None = None,
) -> Report:
    """Publish ``plan`` as a new active generation, in one transaction.

    Raises
    ------
    InvalidInputError
        The report holds errors (they block committing).
    ConflictError
        Another generation was activated since the plan was made.
    """
    step = progress or no_progress
    if isinstance(plan, FeaturePlan):
        return commit_features(conn, plan, progress)
    report = plan.report
    _refuse_errors(report)
    if not plan.diff.moves_areas:
        _keep_active(conn, plan, step)
        return report
    with conn.transaction():
        generation = _stage(conn, report.level, plan.frame, plan.diff,
                            plan.previous_generation,
                            description or f"import {report.level} {report.source}", step)
        _activate_staged(conn, plan, generation, step)
    report.generation_id = generation
    report.committed = True
    step(1.0, f"generation {generation} active")
    return report


def _stage(
    conn: psycopg.Connection, level: str, frame: gpd.GeoDataFrame, diff: Diff,
    previous_generation: int, description: str, step: Progress,
) -> int:
    """In the caller's transaction: a new, inactive generation holding ``diff`` — the
    changed and removed areas closed, the added and changed ones (of ``level``, from
    ``frame``) written. Returns its id.

    Raises ConflictError when another generation was activated since ``previous_generation``.
    """
    configure_long_write(conn)
    lock_areas_writers(conn)  # one publisher at a time, before any row lock
    defer_layer_changes(conn)  # map layers' row locks at the end only (event intake)
    _ensure_still_active(conn, previous_generation)
    step(0.1, "staging a new generation")
    generation = bulk._new_generation(conn, description)
    # Close first: one open row per code (uq_areas_open_code, migration 0013).
    conn.execute(
        "UPDATE areas SET generation_high = %s WHERE id = ANY(%s)",
        (previous_generation, diff.changed_ids + diff.removed_ids),
    )
    step(0.3, "staging added and changed areas")
    staged = frame.iloc[np.concatenate([diff.added, diff.changed])]
    staged = staged.assign(level=level)
    # No other writer can make the COPY wait (they need the lock we hold): encoding
    # 65,000 rows runs with the collector paused.
    with gc_paused():
        bulk._copy_frame(conn, "areas", staged,
                         lambda part: bulk._areas_columns(part, generation))
    return generation


def _ensure_still_active(conn: psycopg.Connection, previous_generation: int) -> None:
    """Raise ConflictError when another generation was activated since the import was
    checked against ``previous_generation`` (call it holding the writers' lock)."""
    active = _active_generation(conn)
    if active != previous_generation:
        raise ConflictError(f"generation {active} was activated after this import was "
                            f"checked against {previous_generation}; check it again")


def _keep_active(conn: psycopg.Connection, plan: Plan, step: Progress) -> None:
    """Commit a ``plan`` that adds, changes and removes nothing: the active generation
    already holds the file's areas, so it stays active and what the checks proved is
    recorded on it. (A new, identical generation would make every API process rebuild
    its lookup index for nothing.)"""
    with conn.transaction():
        lock_areas_writers(conn)
        _ensure_still_active(conn, plan.previous_generation)
        _mark_checked_levels(conn, plan, plan.previous_generation)
    plan.report.generation_id = plan.previous_generation
    plan.report.committed = plan.report.unchanged = True
    step(1.0, f"nothing changed: generation {plan.previous_generation} stays active")


def _activate_staged(conn: psycopg.Connection, plan: Plan, generation: int, step: Progress
                     ) -> None:  # fmt: skip
    """In the caller's transaction: mark what ``plan``'s checks proved, activate the
    staged ``generation``, re-assign features to new grids and notify listeners."""
    _mark_checked_levels(conn, plan, generation)
    step(0.6, "activating")
    conn.execute("SELECT id FROM generations WHERE active FOR UPDATE")
    bulk._activate(conn, generation)
    if plan.report.level == "grid" and plan.diff.moves_areas:
        step(0.7, "re-assigning buildings, facilities, workers, events")
        plan.report.reassignment = reassign_after_grid_change(
            conn, generation, plan.previous_generation
        )
        plan.report.findings += _reassignment_warnings(plan.report.reassignment)
    bulk._stamp_activated(conn, generation)
    announce_deferred(conn)
    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(generation)))
    step(0.95, "committing")


def _mark_checked_levels(conn: psycopg.Connection, plan: Plan, generation: int) -> None:
    """Record which levels of ``generation`` are known to pass the coverage checks.

    The imported level, if its checks found a clean coverage inside the parents; the
    previous generation's other marks carry over, except for the level below the
    imported one when its parents changed (its containment and gaps were checked
    against the old parents).
    """
    level = plan.report.level
    row = conn.execute("SELECT checked_levels FROM generations WHERE id = %s",
                       (plan.previous_generation,)).fetchone()  # fmt: skip
    levels = [x for x in (row[0] if row else []) or [] if x != level]
    child = CHILD_LEVEL.get(level)
    if plan.diff.moves_areas and child in levels:
        levels.remove(child)
    coverage = plan.report.coverage
    if coverage.get("clean") and coverage.get("inside_parents") and coverage.get("gap_free"):
        levels.append(level)
    conn.execute("UPDATE generations SET checked_levels = %s WHERE id = %s",
                 (sorted(levels), generation))  # fmt: skip


def import_file(
    conn: psycopg.Connection,
    path: Path | str,
    level: str,
    *,
    commit: bool = False,
    options: ReadOptions | None = None,
    thresholds: Thresholds | None = None,
    progress: Progress | None = None,
) -> Report:
    """Read, check and diff ``path``; with ``commit`` publish it (errors in the report
    raise InvalidInputError, and nothing is written)."""
    if not commit:
        plan = prepare_import(conn, path, level, options, thresholds, progress)
        conn.rollback()  # end the read-only transaction
        return plan.report
    report = check_and_publish(conn, path, level, options=options, thresholds=thresholds,
                               progress=progress)  # fmt: skip
    _refuse_errors(report)
    return report


def check_and_publish(
    conn: psycopg.Connection,
    path: Path | str,
    level: str,
    *,
    options: ReadOptions | None = None,
    thresholds: Thresholds | None = None,
    progress: Progress | None = None,
    description: str = "",
) -> Report:
    """Read and check ``path`` and, if the report holds no errors, publish it as the new
    active generation in one transaction. Returns the report (``committed`` says which).

    Areas (without ``--fix``) are written while they are checked: the database stages
    them in the open transaction, in its own process, while this one runs the checks;
    once they pass, the new generation is activated in that same transaction, and if
    they find errors (or anything fails, Ctrl-C included) it is rolled back.
    Features, and repairs (which change what is written), are checked first.
    """
    step = progress or no_progress
    t = thresholds or Thresholds()
    if level in FEATURE_LEVELS or t.fix:
        checking: Progress = lambda f, m: step(0.6 * f, m)  # noqa: E731
        # Features: no staged diff here — the commit stages the rows and diffs them.
        plan = prepare_features(conn, path, level, options, checking, fix=t.fix,
                                staged_diff=False) if level in FEATURE_LEVELS \
            else prepare_import(conn, path, level, options, t, checking)  # fmt: skip
        conn.rollback()
        if plan.report.errors:
            return plan.report
        return commit_plan(conn, plan, description=description,
                           progress=lambda f, m: step(0.6 + 0.4 * f, m))  # fmt: skip
    matched = _read_and_match(conn, path, level, options, step)
    conn.rollback()  # end the read-only transaction
    frame = matched.read.frame
    step(0.55, "comparing with the active generation")
    diff = _diff(conn, level, frame, matched, matched.identical, t)
    conn.rollback()
    if not diff.moves_areas:  # nothing to write: check, then keep the active generation
        report, checked = _check(matched, level, t, step)
        if not report.errors:
            _keep_active(conn, _plan(report, checked, matched.published, diff), step)
        return report
    description = description or f"import {level} {matched.read.source}"
    # This thread owns the transaction (begins, commits or rolls it back); the writer
    # only stages inside it, and is stopped before anything ends it.
    with conn.transaction(), ThreadPoolExecutor(max_workers=1) as pool:
        writing = pool.submit(_stage, conn, level, frame, diff, matched.published.generation,
                              description, no_progress)  # fmt: skip
        try:
            report, checked = _check(matched, level, t, step)
            plan = _plan(report, checked, matched.published, diff)
            if report.errors:  # (the database may have refused the same, say invalid
                _stop(conn, writing)  # geometry: the report says what, and where)
                raise psycopg.Rollback()
            generation = _result(writing)
            _activate_staged(conn, plan, generation, lambda f, m: step(0.8 + 0.2 * f, m))
        except BaseException:  # Ctrl-C included: nothing is committed
            _stop(conn, writing)
            raise
    if not report.errors:
        report.generation_id = generation
        report.committed = True
        step(1.0, f"generation {generation} active")
    return report


def _result(writing: Future[int]) -> int:
    """The writer's result, waited for in short steps: Python runs a signal handler
    (Ctrl-C) only between them, never inside one blocking wait."""
    while True:
        try:
            return writing.result(timeout=0.2)
        except TimeoutError:
            continue


def _stop(conn: psycopg.Connection, writing: Future[int]) -> None:
    """Wait for the writer, cancelling its statements (a wait for the writers' lock, a
    COPY) until it has returned; what it raised is of no interest any more."""
    while not writing.done():
        conn.cancel_safe(timeout=5.0)
        wait([writing], timeout=0.1)


def _refuse_errors(report: Report) -> None:
    if report.errors:
        raise InvalidInputError(
            f"{report.source}: {report.errors} error(s) in the report block --commit; "
            "fix the file (or use --fix for invalid geometry) and try again",
            details=error_details(report),
        )  # fmt: skip


def report_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-able dict."""
    return report.to_dict()
