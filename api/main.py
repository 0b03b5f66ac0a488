"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from api.background import event_tasks
from api.errors import install_error_handlers
from api.fastpath import EventIntakeFastPath, LookupFastPath
from api.limits import install_body_limit
from api.routers import (
    areas,
    events,
    health,
    imports,
    layers,
    lookup,
    ogc,
    open311,
    sensors,
    stats,
    tiles,
    web,
    webhooks,
)
from gridmap import __version__
from gridmap.config import get_settings
from gridmap.db.engine import libpq_url, make_engine
from gridmap.errors import NotFoundError
from gridmap.events.clock import Clock, SystemClock
from gridmap.events.settings import get_event_settings
from gridmap.lookup.service import LookupService
from gridmap.mapview import vendor_dir
from tiles.cache import TileCache

log = logging.getLogger("gridmap.api")


async def _warm_lookup(service: LookupService) -> None:
    """Build the lookup index before serving; a database with no division yet is fine."""
    try:
        await anyio.to_thread.run_sync(service.active)
    except NotFoundError as exc:
        log.warning("lookup index not built: %s", exc)
    service.start_listener()


def _tile_cache(engine: Engine) -> TileCache:
    settings = get_settings()
    return TileCache(
        engine,
        size=settings.tile_cache_size,
        feature_cap=settings.tile_feature_cap,
        version_ttl_s=settings.tile_version_ttl_s,
    )


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
        url = libpq_url(app.state.engine.url.render_as_string(hide_password=False))
        app.state.lookup = LookupService(url)
        await _warm_lookup(app.state.lookup)
        app.state.tile_cache = _tile_cache(app.state.engine)
        async with AsyncExitStack() as stack:
            if background:
                await stack.enter_async_context(event_tasks(app))
            yield
        app.state.lookup.stop_listener()
        if engine is None:
            app.state.engine.dispose()

    app = FastAPI(
        title="gridmap",
        version=__version__,
        description="Grid-management service: division, lookup, events, map layers.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(EventIntakeFastPath)  # inside the body limit (added after it)
    install_body_limit(app, get_event_settings().max_body_bytes)
    app.add_middleware(LookupFastPath)
    for module in (health, areas, lookup, imports, layers, events, stats, sensors, webhooks,
                   open311, tiles, ogc, web):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=web.WEB_DIR), name="static")
    app.mount(
        "/vendor/maplibre-gl",
        StaticFiles(directory=vendor_dir() / "maplibre-gl" / "dist", check_dir=False),
        name="vendor-maplibre",
    )
    return app
