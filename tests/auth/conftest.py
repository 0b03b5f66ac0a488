"""Fixtures for access-control tests: two streets of the sample city and their data."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, text

_FIRST_GRID_WITH_RESIDENTS = text("""
    SELECT b.grid_code, min(p.id) AS person,
           (SELECT w.code FROM worker_assignments wa JOIN workers w ON w.id = wa.worker_id
            WHERE wa.grid_code = b.grid_code ORDER BY w.code LIMIT 1) AS worker
    FROM persons p JOIN households h ON h.id = p.household_id
    JOIN buildings b ON b.id = h.building_id
    WHERE b.grid_code IS NOT NULL AND b.grid_code NOT LIKE :exclude
      AND EXISTS (SELECT 1 FROM worker_assignments wa WHERE wa.grid_code = b.grid_code)
    GROUP BY b.grid_code ORDER BY b.grid_code LIMIT 1
""")


@dataclass(frozen=True)
class Street:
    """A street, a grid of it with residents, one resident, and a worker of that grid."""

    code: str
    grid: str
    person_id: int
    worker_code: str


def _street(engine: Engine, exclude: str) -> Street:
    with engine.connect() as conn:
        row = conn.execute(_FIRST_GRID_WITH_RESIDENTS, {"exclude": exclude}).one()
    return Street(row.grid_code[:9], row.grid_code, row.person, row.worker)


@pytest.fixture(scope="session")
def street_a(city_engine: Engine) -> Street:
    return _street(city_engine, "x%")


@pytest.fixture(scope="session")
def street_b(city_engine: Engine, street_a: Street) -> Street:
    other = _street(city_engine, street_a.code + "%")
    assert other.code != street_a.code
    return other
