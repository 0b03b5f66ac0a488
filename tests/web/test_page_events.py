"""The map page with live events, in a real headless Chromium with the network closed:
a report posted through the API appears on the map without a reload, the statistics panel
shows figures, a grid's panel lists its open events, a click shows the lookup answer."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import interior_points, serve_api
from tests.web.pages import open_closed_page, sign_in
from tests.web.test_page import ARTIFACTS, browser  # noqa: F401  (the Chromium fixture)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
CLOSE_STEPS = [("accept", "operator"), ("dispatch", "operator"), ("start", "grid_worker"),
               ("resolve", "grid_worker"), ("verify", "operator"), ("close", "operator")]
EVENT_LAYERS = ["events-reported", "events-handling", "events-resolved", "events-suspended"]


@pytest.fixture(scope="module")
def events_server(city_factory) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """The API on a private copy of the sample city (the test adds events): (url, db url)."""
    db = city_factory()
    _create_credentials(db)
    with serve_api(db) as url:
        yield url, db


CREDENTIALS: dict[str, str] = {}


def _create_credentials(db: str) -> None:
    """An admin key for the reports and actions, an operator account for the page."""
    import secrets

    from gridmap.auth import store
    from gridmap.db.engine import make_engine, session_scope

    engine = make_engine(db)
    with session_scope(engine) as session:
        CREDENTIALS["key"] = store.create_key(session, "page-events", "admin").secret
        CREDENTIALS["user"] = f"op-{secrets.token_hex(3)}"
        CREDENTIALS["password"] = secrets.token_urlsafe(12)
        store.add_user(session, CREDENTIALS["user"], CREDENTIALS["password"], "operator",
                       "500000")
    engine.dispose()


def _headers() -> dict[str, str]:
    return {"X-API-Key": CREDENTIALS["key"]}


def grid_point(db: str, index: int) -> tuple[str, float, float]:
    return interior_points(db)[index]


def report(url: str, lon: float, lat: float) -> dict[str, Any]:
    resp = httpx.post(f"{url}/api/v1/events", json={
        "source": "resident", "category": "urban.appearance.exposed_garbage", "lon": lon,
        "lat": lat, "description": "垃圾堆", "reporter_phone": "13912345678"}, timeout=30,
        headers=_headers())
    assert resp.status_code == 201, resp.text
    return resp.json()["event"]


def close(url: str, event_id: int) -> None:
    for action, role in CLOSE_STEPS:
        body: dict[str, Any] = {"action": action, "role": role, "actor": role}
        if action == "resolve":
            body["photos"] = [PNG]
        resp = httpx.post(f"{url}/api/v1/events/{event_id}/actions", json=body, timeout=30,
                          headers=_headers())
        assert resp.status_code == 200, resp.text


def rendered_event_ids(page: Any) -> list[int]:
    return page.evaluate(
        f"gridmap.map.queryRenderedFeatures({{layers: {EVENT_LAYERS}}})"
        ".map((f) => f.properties.id)"
    )


def test_live_event_appears_and_panels_show_figures(browser, events_server) -> None:  # noqa: F811
    url, db = events_server
    code, lon, lat = grid_point(db, 150)
    # History for the statistics: two reports in the grid, one of them closed.
    first = report(url, lon, lat)
    report(url, lon + 0.0002, lat)
    close(url, first["id"])

    closed = open_closed_page(browser, url)
    page, foreign, errors = closed.page, closed.foreign, closed.errors
    sign_in(page, url, CREDENTIALS["user"], CREDENTIALS["password"])
    page.evaluate(f"gridmap.map.jumpTo({{center: [{lon}, {lat}], zoom: 16}})")
    page.evaluate("window.notReloaded = true")
    page.wait_for_function(
        "gridmap.map.loaded() && gridmap.feed && gridmap.feed.readyState === 1", timeout=60_000)
    page.wait_for_function(
        f"gridmap.map.queryRenderedFeatures({{layers: {EVENT_LAYERS}}}).length > 0",
        timeout=60_000)
    assert first["id"] not in rendered_event_ids(page), "closed events are not on the map"

    # A new report arrives through the live feed: on the map at once, then in the tiles.
    live = report(url, lon - 0.0002, lat)
    page.wait_for_function(
        f"gridmap.liveEvents[{live['id']}] !== undefined && gridmap.map"
        f".querySourceFeatures('live-events').some((f) => f.properties.id === {live['id']})",
        timeout=30_000)
    page.wait_for_function(
        f"gridmap.map.queryRenderedFeatures({{layers: {EVENT_LAYERS}}})"
        f".some((f) => f.properties.id === {live['id']})", timeout=30_000)
    assert page.evaluate("window.notReloaded === true"), "the page must not reload"

    # The statistics panel: figures for the street covering the view (1 of 3 closed).
    page.wait_for_function(
        "document.getElementById('stat-reported') && "
        "Number(document.getElementById('stat-reported').textContent) >= 3", timeout=30_000)
    assert page.inner_text("#stat-closure").endswith("%")
    assert page.inner_text("#stat-ontime").endswith("%") or page.inner_text("#stat-ontime") \
        == "—"
    assert page.inner_text("#stat-overdue").isdigit()
    stats = page.evaluate("gridmap.stats")
    assert stats["closed"] >= 1 and code.startswith(stats["area"]["code"])

    # Click the grid at the event: lookup answer and the grid's open events with deadlines.
    x, y = page.evaluate(
        f"(() => {{ const p = gridmap.map.project([{lon}, {lat + 0.0003}]); "
        "return [p.x, p.y]; })()")
    page.mouse.click(x, y)
    page.wait_for_selector("#lookup-code", timeout=30_000)
    assert page.inner_text("#lookup-code") == code
    page.wait_for_selector("#panel-events-table", timeout=30_000)
    listed = page.eval_on_selector_all("#panel-events-table tr[data-id]",
                                       "(rows) => rows.map((r) => Number(r.dataset.id))")
    assert live["id"] in listed and first["id"] not in listed
    assert page.inner_text("#panel-code") == code

    # Step back so the screenshot shows grids shaded by open events around the events.
    page.evaluate(f"gridmap.map.jumpTo({{center: [{lon}, {lat}], zoom: 14.5}})")
    page.wait_for_function("gridmap.map.loaded() && gridmap.map.areTilesLoaded()",
                           timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "map-events.png"))
    assert "13912345678" not in page.content()
    assert not foreign, f"the page reached outside its server: {foreign}"
    assert not errors, errors
    page.close()
