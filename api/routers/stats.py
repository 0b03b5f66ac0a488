"""Event statistics by area and category, as JSON or CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse

from api.dependencies import SessionDep
from api.event_deps import ClockDep
from api.event_schemas import StatsOut
from api.schemas import ErrorOut
from api.security import PrincipalDep
from gridmap.auth.scope import narrow_code
from gridmap.events import stats

router = APIRouter(prefix="/api/v1", tags=["stats"])


@router.get(
    "/stats",
    operation_id="get_event_stats",
    response_model=StatsOut,
    responses={
        200: {"content": {"application/json": {}, "text/csv": {}},
              "description": "figures as JSON, or CSV with format=csv"},
        422: {"model": ErrorOut},
    },
)
def get_stats(
    session: SessionDep,
    clock: ClockDep,
    principal: PrincipalDep,
    from_: Annotated[datetime, Query(alias="from", description="ISO 8601, inclusive")],
    to: Annotated[datetime, Query(description="ISO 8601, exclusive")],
    level: Literal["grid", "community", "street", "district"] = "district",
    code: Annotated[str | None, Query(pattern=r"^[0-9]{6,15}$")] = None,
    format: Literal["json", "csv"] = "json",
) -> Any:
    """Reported, accepted, closed, closure, on-time closure and rework rates, handling time,
    overdue now and satisfaction for events reported in [from, to) — by area and category."""
    result = stats.compute(session, level=level, code=narrow_code(principal, code),
                           start=from_, end=to,
                           now=clock.now())
    if format == "csv":
        return PlainTextResponse(stats.to_csv(result), media_type="text/csv")
    return JSONResponse(result)
