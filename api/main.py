"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from api.background import event_tasks
from api.errors import install_error_handlers
from api.limits import install_body_limit
from api.routers import areas, events, health, open311, sensors, stats, webhooks
from gridmap import __version__
from gridmap.db.engine import make_engine
from gridmap.events.clock import Clock, SystemClock
from gridmap.events.settings import get_event_settings


def create_app(
    engine: Engine | None = None, clock: Clock | None = None, *, background: bool = True
) -> FastAPI:
    """Build the app; ``engine`` defaults to the configured (or embedded) database.

    ``clock`` (default: the system clock) is what every event rule reads the time from;
    ``background=False`` leaves out the scheduler, webhook deliverer and MQTT listener.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or make_engine()
        app.state.clock = clock or SystemClock()
        if background:
            async with event_tasks(app):
                yield
        else:
            yield
        if engine is None:
            app.state.engine.dispose()

    app = FastAPI(
        title="gridmap",
        version=__version__,
        description="Grid-management service: division, lookup, events, map layers.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_body_limit(app, get_event_settings().max_body_bytes)
    app.include_router(health.router)
    app.include_router(areas.router)
    app.include_router(events.router)
    app.include_router(stats.router)
    app.include_router(sensors.router)
    app.include_router(webhooks.router)
    app.include_router(open311.router)
    return app
