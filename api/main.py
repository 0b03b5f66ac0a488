"""The FastAPI application factory."""

from __future__ import annotations

import gc
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
from api.limits import LimitsMiddleware
from api.routers import (
    areas,
    audit,
    auth,
    events,
    generations,
    health,
    imports,
    layers,
    lookup,
    ogc,
    open311,
    persons,
    sensors,
    stats,
    tiles,
    web,
    webhooks,
)
from api.security import ALL_ROLES, LOOKUP_ROLES, Allow, session_secret
from api.tile_fastpath import TileFastPath
from gridmap import __version__
from gridmap.auth.cache import PrincipalCache
from gridmap.auth.principal import Role
from gridmap.config import get_settings
from gridmap.db.engine import libpq_url, make_engine
from gridmap.errors import NotFoundError
from gridmap.events.batch import IntakeBatcher
from gridmap.events.clock import Clock, SystemClock
from gridmap.lookup.service import LookupService
from gridmap.mapview import vendor_dir
from tiles.async_build import AsyncTileBuilder
from tiles.cache import TileCache

log = logging.getLogger("gridmap.api")

EXPORT_ROLES = (Role.admin, Role.gis_editor, Role.operator)
EVENT_ROLES = (Role.admin, Role.operator, Role.grid_worker, Role.reporter, Role.system)
STATS_ROLES = (Role.admin, Role.operator, Role.grid_worker)
PERSON_ROLES = (Role.admin, Role.operator, Role.grid_worker)


async def _warm_lookup(service: LookupService) -> None:
    """Build the lookup index before serving; a database with no division yet is fine."""
    try:
        await anyio.to_thread.run_sync(service.active)
    except NotFoundError as exc:
        log.warning("lookup index not built: %s", exc)
    # The index and the app are long-lived (~300k objects at 65,000 grids): keep them out
    # of the cyclic collector's full passes, each ~80 ms with the event loop stopped.
    gc.freeze()
    service.start_listener()


def _tile_cache(engine: Engine) -> TileCache:
    settings = get_settings()
    return TileCache(
        engine,
        size=settings.tile_cache_size,
        feature_cap=settings.tile_feature_cap,
        version_ttl_s=settings.tile_version_ttl_s,
    )


def _tile_builder(url: str) -> AsyncTileBuilder | None:
    settings = get_settings()
    if settings.tile_pool_size <= 0:
        return None
    return AsyncTileBuilder(url, size=settings.tile_pool_size,
                            statement_timeout_ms=settings.statement_timeout_ms)


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
        app.state.lookup = LookupService(url, cache_dir=get_settings().data_dir / "cache")
        await _warm_lookup(app.state.lookup)
        settings = get_settings()
        app.state.principals = PrincipalCache(app.state.engine, settings.auth_cache_ttl_s)
        app.state.session_secret = session_secret(settings)
        app.state.tile_cache = _tile_cache(app.state.engine)
        app.state.tile_builder = builder = _tile_builder(url)
        app.state.intake = IntakeBatcher(app.state.engine, lookup=app.state.lookup)
        app.state.intake.start()
        async with AsyncExitStack() as stack:
            if builder is not None:
                await builder.open()
                stack.push_async_callback(builder.close)
            if background:
                await stack.enter_async_context(event_tasks(app))
            yield
        await anyio.to_thread.run_sync(app.state.intake.stop)
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
    # Fast paths authenticate like the routes (api.security.authenticate); the limits
    # middleware is outermost: address rate limit and body size before anything else.
    app.add_middleware(LookupFastPath)
    app.add_middleware(TileFastPath)
    app.add_middleware(EventIntakeFastPath, roles=EVENT_ROLES)
    app.add_middleware(LimitsMiddleware)
    # Access: one line per router. Area scope is applied inside the queries themselves.
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(web.router)
    app.include_router(areas.router, dependencies=[Allow(*ALL_ROLES)])
    app.include_router(generations.router, dependencies=[Allow(*ALL_ROLES)])
    app.include_router(lookup.router, dependencies=[Allow(*LOOKUP_ROLES)])
    app.include_router(imports.router, dependencies=[Allow(Role.admin, Role.gis_editor)])
    app.include_router(layers.router, dependencies=[Allow(*EXPORT_ROLES)])
    app.include_router(tiles.router, dependencies=[Allow(*ALL_ROLES)])
    app.include_router(ogc.router, dependencies=[Allow(*ALL_ROLES)])
    app.include_router(persons.router, dependencies=[Allow(*PERSON_ROLES)])
    app.include_router(audit.router, dependencies=[Allow(Role.admin)])
    app.include_router(events.router, dependencies=[Allow(*EVENT_ROLES)])
    app.include_router(open311.router, dependencies=[Allow(*EVENT_ROLES)])
    app.include_router(stats.router, dependencies=[Allow(*STATS_ROLES)])
    app.include_router(sensors.router, dependencies=[Allow(Role.admin, Role.system)])
    app.include_router(webhooks.router, dependencies=[Allow(Role.admin)])
    app.mount("/static", StaticFiles(directory=web.WEB_DIR), name="static")
    app.mount(
        "/vendor/maplibre-gl",
        StaticFiles(directory=vendor_dir() / "maplibre-gl" / "dist", check_dir=False),
        name="vendor-maplibre",
    )
    return app
