"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from api.errors import install_error_handlers
from api.routers import areas, health, imports, layers
from gridmap import __version__
from gridmap.db.engine import make_engine


def create_app(engine: Engine | None = None) -> FastAPI:
    """Build the app; ``engine`` defaults to the configured (or embedded) database."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine or make_engine()
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
    app.include_router(imports.router)
    app.include_router(layers.router)
    return app
