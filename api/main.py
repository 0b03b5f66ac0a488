"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from api.errors import install_error_handlers
from api.routers import areas, health, ogc, tiles, web
from gridmap import __version__
from gridmap.config import get_settings
from gridmap.db.engine import make_engine
from gridmap.mapview import vendor_dir
from tiles.cache import TileCache


def create_app(engine: Engine | None = None) -> FastAPI:
    """Build the app; ``engine`` defaults to the configured (or embedded) database."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or make_engine()
        settings = get_settings()
        app.state.tile_cache = TileCache(
            app.state.engine,
            size=settings.tile_cache_size,
            feature_cap=settings.tile_feature_cap,
            version_ttl_s=settings.tile_version_ttl_s,
        )
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
    app.include_router(health.router)
    app.include_router(areas.router)
    app.include_router(tiles.router)
    app.include_router(ogc.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.WEB_DIR), name="static")
    app.mount(
        "/vendor/maplibre-gl",
        StaticFiles(directory=vendor_dir() / "maplibre-gl" / "dist", check_dir=False),
        name="vendor-maplibre",
    )
    return app
