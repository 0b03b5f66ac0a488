"""Live updates (SSE over a real server) and webhooks with retries, back-off and time-outs."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gridmap.db.engine import session_scope
from gridmap.events import notify
from gridmap.events.clock import FixedClock
from gridmap.models import WebhookDelivery
from tests.conftest import make_key
from tests.events.conftest import MONDAY_10

HEADERS: dict[str, str] = {}  # admin credentials of the live server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(events_engine: Engine) -> Iterator[str]:
    """The API served by uvicorn on a loopback port (background work off)."""
    from api.main import create_app

    port = _free_port()
    app = create_app(events_engine, FixedClock(MONDAY_10), background=False)
    HEADERS["Authorization"] = f"Bearer {make_key(events_engine, 'admin')}"
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


class Receiver:
    """A loopback HTTP server recording POSTs; can fail the first N or hang."""

    def __init__(self, fail_first: int = 0, hang_s: float = 0.0):
        self.received: list[dict] = []
        self.fail_left, self.hang_s = fail_first, hang_s
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.hang_s:
                    time.sleep(outer.hang_s)
                if outer.fail_left > 0:
                    outer.fail_left -= 1
                    self.send_response(500)
                else:
                    outer.received.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _report(base: str, point, category: str = "social.safety_hazard") -> httpx.Response:
    _, lon, lat = point
    return httpx.post(headers=HEADERS, url=f"{base}/api/v1/events",
                      json={"category": category, "lon": lon, "lat": lat}, timeout=10)


def test_sse_stream_delivers_created_and_action_events(live: str, grid_points) -> None:
    got: list[tuple[str, dict]] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", headers=HEADERS, url=f"{live}/api/v1/events/stream",
                          params={"limit": 3},
                          timeout=20) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in resp.iter_lines():
                if line.startswith(": connected"):
                    ready.set()
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    got.append((kind or "", json.loads(line[6:])))

    thread = threading.Thread(target=listen)
    thread.start()
    assert ready.wait(10)
    eid = _report(live, grid_points[200]).json()["event"]["id"]
    httpx.post(headers=HEADERS, url=f"{live}/api/v1/events/{eid}/actions",
               json={"action": "accept", "role": "operator", "actor": "op"}, timeout=10)
    thread.join(20)
    assert [k for k, _ in got] == ["report", "assign", "accept"]
    assert {m["id"] for _, m in got} == {eid}
    assert got[2][1]["to_status"] == "accepted" and got[2][1]["role"] == "operator"
    assert "reporter_phone" not in got[0][1]


def test_webhook_retries_with_backoff(session: Session, live: str, grid_points) -> None:
    receiver = Receiver(fail_first=2)
    clock = FixedClock(MONDAY_10)
    try:
        hook = httpx.post(headers=HEADERS, url=f"{live}/api/v1/webhooks",
                          json={"url": receiver.url}).json()
        eid = _report(live, grid_points[210]).json()["event"]["id"]
        post = notify.httpx_poster(timeout=2)
        assert notify.deliver_due(session, clock.now(), post) == 0  # 500: retry in 1 s
        session.commit()
        assert notify.deliver_due(session, clock.now(), post) == 0  # not due yet
        session.commit()
        assert notify.deliver_due(session, clock.advance(seconds=1), post) == 0  # 500: 2 s
        session.commit()
        assert notify.deliver_due(session, clock.advance(seconds=1), post) == 0  # not due
        session.commit()
        assert notify.deliver_due(session, clock.advance(seconds=1), post) == 1
        session.commit()
        assert [m["id"] for m in receiver.received] == [eid]
        row = session.scalar(select(WebhookDelivery).where(
            WebhookDelivery.webhook_id == hook["id"]))
        assert row.status == "delivered" and row.attempts == 3
    finally:
        # 422, no effect:
        httpx.post(headers=HEADERS, url=f"{live}/api/v1/webhooks", json={"url": "ftp://x"})
        session.execute(WebhookDelivery.__table__.delete())
        session.execute(notify.Webhook.__table__.update().values(active=False))
        session.commit()
        receiver.close()


def test_hanging_webhook_never_blocks_intake(session: Session, events_engine: Engine,
                                             live: str, grid_points) -> None:
    receiver = Receiver(hang_s=3)
    try:
        httpx.post(headers=HEADERS, url=f"{live}/api/v1/webhooks", json={"url": receiver.url})
        first = _report(live, grid_points[220])
        clock = FixedClock(MONDAY_10)

        def deliver() -> None:
            with session_scope(events_engine) as s:
                notify.deliver_due(s, clock.now(), notify.httpx_poster(timeout=1))

        worker = threading.Thread(target=deliver)
        worker.start()
        time.sleep(0.2)  # the deliverer is now stuck on the hanging receiver
        second = _report(live, grid_points[230])
        assert worker.is_alive(), "the deliverer should still be waiting on the receiver"
        assert first.status_code == second.status_code == 201
        worker.join(10)
        assert notify.backoff(1) == timedelta(seconds=1)
        assert notify.backoff(20) == timedelta(seconds=notify.MAX_BACKOFF_S)
    finally:
        session.execute(WebhookDelivery.__table__.delete())
        session.execute(notify.Webhook.__table__.update().values(active=False))
        session.commit()
        receiver.close()
