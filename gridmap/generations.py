"""Generations of the division (MapIt style): which one is active, validity filters, and
the history: every generation, when it was in force, and what it changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, case, false, func, or_, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by, array_agg
from sqlalchemy.orm import Session, aliased

from gridmap.auth.principal import Principal
from gridmap.auth.scope import area_filter
from gridmap.errors import InvalidInputError, NotFoundError
from gridmap.models import LEVEL_ORDER, Area, Generation


def active_generation_id(session: Session) -> int:
    """The id of the active generation; NotFoundError when nothing was published yet."""
    gen = session.scalar(select(Generation.id).where(Generation.active))
    if gen is None:
        raise NotFoundError("no active generation: load a division first (gridmap sample)")
    return gen


def valid_in(generation: int) -> ColumnElement[bool]:
    """SQL condition: the area row is valid in ``generation``."""
    return and_(
        Area.generation_low <= generation,
        or_(Area.generation_high.is_(None), Area.generation_high >= generation),
    )


def valid_in_sql(generation: str, alias: str = "") -> str:
    """:func:`valid_in` as SQL text for raw statements: the row (of ``alias``) is valid
    in ``generation`` — a placeholder or a column (``%(gen)s``, ``:gen``, ``g.id``)."""
    a = f"{alias}." if alias else ""
    return (f"{a}generation_low <= {generation} AND ({a}generation_high IS NULL"
            f" OR {a}generation_high >= {generation})")


def resolve_generation(session: Session, generation: int | None) -> int:
    """``generation`` if it exists, else the active one."""
    if generation is None:
        return active_generation_id(session)
    if session.get(Generation, generation) is None:
        raise NotFoundError(f"generation {generation} does not exist")
    return generation


@dataclass(frozen=True)
class GenerationSummary:
    """One generation: when it was created and in force, and the one it replaced.

    It was in force from ``activated_at`` until ``superseded_at`` (None: still active,
    or never activated): the window a lookup ``as_of`` a timestamp resolves to it.
    """

    id: int
    description: str
    created_at: datetime
    activated_at: datetime | None
    superseded_at: datetime | None
    active: bool
    previous: int | None
    """The generation active before it (not always id - 1: databases published before
    ids were taken under the writers' lock have gaps where an import was rolled back)."""


@dataclass(frozen=True)
class LevelChanges:
    """What a generation changed in one level, against the generation before it."""

    level: str
    added: int
    removed: int
    changed: int
    unchanged: int
    added_codes: list[str]
    removed_codes: list[str]
    changed_codes: list[str]


@dataclass(frozen=True)
class GenerationChanges:
    """A generation and, per level it touched, the areas it added, removed and changed."""

    generation: GenerationSummary
    levels: list[LevelChanges]


def list_generations(session: Session) -> list[GenerationSummary]:
    """Every generation, oldest first."""
    return [_generation_summary(row) for row in session.execute(_summaries())]


def generation_changes(
    session: Session, generation: int, *, limit: int = 1000, principal: Principal | None = None
) -> GenerationChanges:
    """What ``generation`` changed: per level, the areas it added, removed (closed) and
    changed (closed and written again), with the first ``limit`` codes of each, and how
    many it kept. Areas outside ``principal``'s scope are neither listed nor counted.

    Raises NotFoundError when the generation does not exist.
    """
    if not 0 <= limit <= 100_000:
        raise InvalidInputError("limit must be 0..100000", details=[{"field": "limit"}])
    row = session.execute(_summaries().where(Generation.id == generation)).one_or_none()
    if row is None:
        raise NotFoundError(f"generation {generation} does not exist")
    summary = _generation_summary(row)
    scope = true() if principal is None else area_filter(principal, Area.code)
    moved = _moved(session, generation, summary.previous, scope, limit)
    kept = _kept(session, generation, summary.previous, scope)
    levels = [level.value for level in LEVEL_ORDER if level.value in moved]
    return GenerationChanges(summary, [_level_changes(lv, moved[lv], kept.get(lv, 0))
                                       for lv in levels])  # fmt: skip


def _summaries() -> Select[Any]:
    """Generations with the one before each (the last activated before it) and the time
    the next one was activated."""
    before = aliased(Generation)
    after = aliased(Generation)
    previous = (select(func.max(before.id))
                .where(before.id < Generation.id, before.activated_at.is_not(None))
                .scalar_subquery())  # fmt: skip
    superseded = (select(func.min(after.activated_at))
                  .where(after.id > Generation.id, after.activated_at.is_not(None))
                  .scalar_subquery())  # fmt: skip
    return select(
        Generation.id, Generation.description, Generation.created_at, Generation.activated_at,
        case((Generation.activated_at.is_(None), None), else_=superseded).label("superseded_at"),
        Generation.active, previous.label("previous"),
    ).order_by(Generation.id)  # fmt: skip


def _generation_summary(row: Row[Any]) -> GenerationSummary:
    return GenerationSummary(**row._asdict())


_Moved = dict[str, dict[str, tuple[int, list[str]]]]


def _moved(session: Session, generation: int, previous: int | None,
           scope: ColumnElement[bool], limit: int) -> _Moved:  # fmt: skip
    """Per level and change (added, removed, changed): how many, and the first codes.

    The publisher of ``generation`` wrote its new rows with ``generation_low`` =
    ``generation`` and closed the replaced ones at ``generation_high`` = ``previous``:
    a code in both was changed, in the new rows only added, in the closed ones removed.
    """
    new = select(Area.level, Area.code).where(Area.generation_low == generation, scope)
    closed = false() if previous is None else Area.generation_high == previous
    old = select(Area.level, Area.code).where(closed, scope)
    n, o = new.subquery(), old.subquery()
    both = and_(n.c.level == o.c.level, n.c.code == o.c.code)
    change = case((o.c.code.is_(None), "added"), (n.c.code.is_(None), "removed"),
                  else_="changed")  # fmt: skip
    pairs = (select(func.coalesce(n.c.level, o.c.level).label("level"),
                    func.coalesce(n.c.code, o.c.code).label("code"), change.label("change"))
             .select_from(n.join(o, both, full=True)).subquery())  # fmt: skip
    codes = array_agg(aggregate_order_by(pairs.c.code, pairs.c.code))
    rows = session.execute(
        select(pairs.c.level, pairs.c.change, func.count(), codes[1:limit])
        .group_by(pairs.c.level, pairs.c.change)
    )
    out: _Moved = {}
    for level, kind, count, first in rows:
        out.setdefault(level, {})[kind] = (int(count), list(first or []))
    return out


def _kept(session: Session, generation: int, previous: int | None,
          scope: ColumnElement[bool]) -> dict[str, int]:  # fmt: skip
    """Per level, the areas valid both before and in ``generation`` (unchanged)."""
    if previous is None:
        return {}
    rows = session.execute(
        select(Area.level, func.count())
        .where(valid_in(previous), valid_in(generation), scope)
        .group_by(Area.level)
    )
    return {level: int(count) for level, count in rows}


def _level_changes(level: str, moved: dict[str, tuple[int, list[str]]], kept: int
                   ) -> LevelChanges:  # fmt: skip
    added, removed, changed = (moved.get(k, (0, [])) for k in ("added", "removed", "changed"))
    return LevelChanges(level, added[0], removed[0], changed[0], kept,
                        added[1], removed[1], changed[1])  # fmt: skip
