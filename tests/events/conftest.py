"""Fixtures for events: a fresh sample-city database per module, a controllable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gridmap.db.engine import make_engine
from gridmap.events.clock import FixedClock
from gridmap.events.deadlines import LOCAL_TZ
from tests.conftest import interior_points

# A Monday, 10:00 local time: inside working hours.
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=LOCAL_TZ)


@pytest.fixture(scope="module")
def events_db(city_factory: Callable[[], str]) -> str:
    """A migrated database with the sample city, private to the test module (writable)."""
    return city_factory()


@pytest.fixture(scope="module")
def events_engine(events_db: str) -> Iterator[Engine]:
    engine = make_engine(events_db)
    yield engine
    engine.dispose()


@pytest.fixture
def session(events_engine: Engine) -> Iterator[Session]:
    """A session that commits what the test does (the module's database is its own)."""
    s = sessionmaker(bind=events_engine, expire_on_commit=False)()
    yield s
    s.rollback()
    s.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY_10)


@pytest.fixture(scope="module")
def grid_points(events_db: str) -> list[tuple[str, float, float]]:
    """(grid code, lon, lat) of an interior point of every grid, by code."""
    return interior_points(events_db)
