"""Liveness and database health."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.dependencies import EngineDep
from api.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    operation_id="health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut}},
)
def health(engine: EngineDep) -> HealthOut | JSONResponse:
    """Checks the database; reports the PostGIS version and the active generation."""
    try:
        with engine.connect() as conn:
            version = conn.scalar(text("SELECT postgis_lib_version()"))
            gen = conn.scalar(text("SELECT id FROM generations WHERE active"))
    except DBAPIError as exc:
        body = HealthOut(status="degraded", database=f"unavailable: {type(exc.orig).__name__}")
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthOut(status="ok", database="ok", postgis_version=version, active_generation=gen)
