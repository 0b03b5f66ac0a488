"""Generations of the division (MapIt style): which one is active, and validity filters."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from gridmap.errors import NotFoundError
from gridmap.models import Area, Generation


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


def resolve_generation(session: Session, generation: int | None) -> int:
    """``generation`` if it exists, else the active one."""
    if generation is None:
        return active_generation_id(session)
    if session.get(Generation, generation) is None:
        raise NotFoundError(f"generation {generation} does not exist")
    return generation
