"""The lookup fast path answers simple requests itself and defers everything else."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
from sqlalchemy import Engine

from api.fastpath import _answer
from gridmap.auth.cache import PrincipalCache
from gridmap.lookup.service import LookupService
from tests.conftest import make_key

AUTH: dict[str, object] = {}


def _scope(service: LookupService, query: str, authenticated: bool = True) -> dict:
    app = SimpleNamespace(state=SimpleNamespace(lookup=service, principals=AUTH["cache"]))
    headers = [(b"authorization", f"Bearer {AUTH['key']}".encode())] if authenticated else []
    return {"type": "http", "method": "GET", "path": "/api/v1/lookup",
            "query_string": query.encode(), "app": app, "headers": headers}


def _auth(engine: Engine) -> None:
    AUTH["key"] = make_key(engine, "system")
    AUTH["cache"] = PrincipalCache(engine)


def test_simple_request_is_answered_like_the_route(city_db: str, city_engine: Engine,
                                                   client) -> None:  # type: ignore[no-untyped-def]
    _auth(city_engine)
    service = LookupService(city_db)
    snap = service.active()
    x, y = (float(v) for v in snap.index._geoms[0].representative_point().coords[0])  # noqa: SLF001
    body = _answer(_scope(service, f"lon={x}&lat={y}"))
    assert body is not None
    answer = orjson.loads(body)
    assert answer["grid"]["code"] == snap.index.codes[0]
    full = client.get("/api/v1/lookup", params={"lon": x, "lat": y, "as_of": snap.generation})
    assert answer == full.json()
    # Without credentials the fast path defers (the route answers 401).
    assert _answer(_scope(service, f"lon={x}&lat={y}", authenticated=False)) is None


def test_other_requests_fall_through(city_db: str, city_engine: Engine) -> None:
    _auth(city_engine)
    service = LookupService(city_db)
    for query in ("lon=106.5", "lon=abc&lat=29.5", "lon=106.5&lat=29.5&snap=100",
                  "lon=106.5&lat=29.5&as_of=1", "lon=500&lat=29.5",
                  "lon=106.5&lat=29.5&crs=EPSG:1"):
        assert _answer(_scope(service, query)) is None, query
