"""The command-center page in a real headless Chromium, with the network closed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.web.pages import open_closed_page, sign_in

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    # Software WebGL (SwiftShader): MapLibre draws with WebGL and there is no GPU here.
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]  # fmt: skip

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def _operator_login(city_engine) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A city-wide operator account in the served database."""
    import secrets

    from gridmap.auth import store
    from gridmap.db.engine import session_scope

    username, password = f"op-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    with session_scope(city_engine) as session:
        store.add_user(session, username, password, "operator", "500000")
    return username, password


def test_page_renders_grids_and_opens_a_profile(browser, live_server: str, city_engine) -> None:  # type: ignore[no-untyped-def]
    username, password = _operator_login(city_engine)
    closed = open_closed_page(browser, live_server)
    page, foreign, errors = closed.page, closed.foreign, closed.errors
    page.fill("#login-user", username)
    page.fill("#login-password", "wrong password")
    page.click("#login-submit")
    page.wait_for_selector("#login-error", state="visible", timeout=30_000)
    sign_in(page, live_server, username, password)
    # Zoom to the grid level around the city centre, wait for the tiles to be drawn.
    page.evaluate("gridmap.map.jumpTo({center: gridmap.map.getCenter(), zoom: 13.5})")
    page.wait_for_function(
        "gridmap.map.loaded() && gridmap.map.queryRenderedFeatures({layers: ['grids-fill']})"
        ".length > 0",
        timeout=60_000,
    )
    count = page.evaluate(
        "gridmap.map.queryRenderedFeatures({layers: ['grids-fill']}).length"
    )
    assert count > 0
    # Click the middle of a rendered grid: its profile panel opens.
    point = page.evaluate(
        """() => {
          const f = gridmap.map.queryRenderedFeatures({layers: ['grids-fill']})[0];
          const code = f.properties.code;
          const c = gridmap.map.getCanvas().getBoundingClientRect();
          for (let y = 5; y < c.height; y += 10) for (let x = 5; x < c.width; x += 10) {
            const hit = gridmap.map.queryRenderedFeatures([x, y], {layers: ['grids-fill']});
            if (hit.length && hit[0].properties.code === code) return {x, y, code};
          }
          return null;
        }"""
    )
    assert point is not None
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector("#panel-code", timeout=30_000)
    clicked = page.inner_text("#panel-code")
    assert len(clicked) == 15 and clicked.isdigit()
    assert page.is_visible("#panel")
    # Search by code finds the grid.
    page.fill("#search-q", clicked)
    page.press("#search-q", "Enter")
    page.wait_for_selector("#search-results li", timeout=30_000)
    assert clicked in page.inner_text("#search-results")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "map-page.png"))
    assert not foreign, f"the page reached outside its server: {foreign}"
    assert not errors, errors
    page.close()
