"""The lookup fast path answers simple requests itself and defers everything else."""

from __future__ import annotations

from types import SimpleNamespace

import orjson

from api.fastpath import _answer
from gridmap.lookup.service import LookupService


def _scope(service: LookupService, query: str) -> dict:
    app = SimpleNamespace(state=SimpleNamespace(lookup=service))
    return {"type": "http", "method": "GET", "path": "/api/v1/lookup",
            "query_string": query.encode(), "app": app}


def test_simple_request_is_answered_like_the_route(city_db: str, client) -> None:
    service = LookupService(city_db)
    snap = service.active()
    x, y = (float(v) for v in snap.index._geoms[0].representative_point().coords[0])  # noqa: SLF001
    body = _answer(_scope(service, f"lon={x}&lat={y}"))
    assert body is not None
    answer = orjson.loads(body)
    assert answer["grid"]["code"] == snap.index.codes[0]
    full = client.get("/api/v1/lookup", params={"lon": x, "lat": y, "as_of": snap.generation})
    assert answer == full.json()


def test_other_requests_fall_through(city_db: str) -> None:
    service = LookupService(city_db)
    for query in ("lon=106.5", "lon=abc&lat=29.5", "lon=106.5&lat=29.5&snap=100",
                  "lon=106.5&lat=29.5&as_of=1", "lon=500&lat=29.5",
                  "lon=106.5&lat=29.5&crs=EPSG:1"):
        assert _answer(_scope(service, query)) is None, query
