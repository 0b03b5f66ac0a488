"""Typed FastAPI dependencies.

Dependencies that only read ``app.state`` are ``async def``: FastAPI runs plain
``def`` dependencies in a thread pool, a hop that cost ~150 µs per request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gridmap.db.engine import session_scope
from gridmap.lookup.service import LookupService
from tiles.cache import TileCache


async def get_engine(request: Request) -> Engine:
    """The engine created at start-up (``app.state.engine``)."""
    engine: Engine = request.app.state.engine
    return engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """A session per request; commits when the handler returns without error.

    Used with ``scope="function"`` (``SessionDep``): the commit runs when the handler
    returns, before the response is sent — an answer never acknowledges what was not
    stored, and a failed commit is the request's error (503), not a lost write.
    """
    with session_scope(engine) as session:
        yield session


async def get_lookup(request: Request) -> LookupService:
    """The in-memory lookup service created at start-up (``app.state.lookup``)."""
    service: LookupService = request.app.state.lookup
    return service


EngineDep = Annotated[Engine, Depends(get_engine)]
LookupDep = Annotated[LookupService, Depends(get_lookup)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_tile_cache(request: Request) -> TileCache:
    """The process's tile cache (created at start-up)."""
    cache: TileCache = request.app.state.tile_cache
    return cache


TileCacheDep = Annotated[TileCache, Depends(get_tile_cache)]
