"""Schemathesis against the OpenAPI of every endpoint: no 5xx, whatever the input.

Runs as admin (every route reachable) on a writable sample city of its own, with a fixed
number of examples per operation so that the run stays short. The number of requests
sent is printed at the end (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from gridmap.config import get_settings
from gridmap.db.engine import make_engine
from tests.conftest import make_key

EXAMPLES_PER_OPERATION = 120
SENT: dict[str, int] = {"requests": 0, "5xx": 0}


@pytest.fixture(scope="module")
def fuzz_app(database_factory: Callable[..., str], sample_city: Any) -> Iterator[tuple[Any, str]]:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from gridmap.ingest.bulk import load_city

    url = database_factory()
    with psycopg.connect(url) as conn:
        load_city(conn, sample_city)
    engine = make_engine(url)
    key = make_key(engine, "admin")
    s = get_settings()
    old = (s.rate_limit_per_minute, s.rate_limit_ip_per_minute)
    s.rate_limit_per_minute = s.rate_limit_ip_per_minute = 0
    app = create_app(engine)
    with TestClient(app):  # runs the lifespan: engine, lookup index, caches
        yield app, key
    s.rate_limit_per_minute, s.rate_limit_ip_per_minute = old
    engine.dispose()
    print(f"\nschemathesis: {SENT['requests']} requests, {SENT['5xx']} server errors")


@pytest.fixture(scope="module")
def api_schema(fuzz_app: tuple[Any, str]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app[0])


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def test_no_server_errors(case: Any, fuzz_app: tuple[Any, str]) -> None:
    response = case.call(headers={"Authorization": f"Bearer {fuzz_app[1]}"})
    SENT["requests"] += 1
    if response.status_code >= 500:
        SENT["5xx"] += 1
    assert response.status_code < 500, (case.method, case.formatted_path, case.query,
                                        response.text[:300])  # fmt: skip
