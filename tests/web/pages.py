"""Helpers for page tests: a browser page on a closed network, and signing in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse


@dataclass
class ClosedPage:
    """A page that may reach only its own server; what else it asked for, and JS errors."""

    page: Any
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def open_closed_page(browser: Any, base: str) -> ClosedPage:
    """Open ``base`` + "/" with every request to another host aborted and recorded."""
    own = urlparse(base).netloc
    closed = ClosedPage(browser.new_page(viewport={"width": 1200, "height": 800}))

    def only_own_server(route: Any) -> None:
        if urlparse(route.request.url).netloc == own:
            route.continue_()
        else:
            closed.foreign.append(route.request.url)
            route.abort()

    closed.page.route("**/*", only_own_server)
    closed.page.on("pageerror", lambda exc: closed.errors.append(str(exc)))
    closed.page.goto(base + "/", wait_until="load")
    # Without a session the page sends us to the login form.
    closed.page.wait_for_url("**/login", timeout=30_000)
    return closed


def sign_in(page: Any, base: str, username: str, password: str) -> None:
    """Submit the login form and wait until the map is back and ready."""
    page.fill("#login-user", username)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_url(base + "/", timeout=30_000)
    page.wait_for_function("window.gridmap && window.gridmap.ready === true", timeout=60_000)
