"""Open311 GeoReport v2 at /open311/v2/ (JSON and XML), so existing clients work unchanged."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from api.dependencies import LookupDep, SessionDep
from api.event_deps import ClockDep
from api.security import PrincipalDep
from gridmap.events import open311

router = APIRouter(prefix="/open311/v2", tags=["open311"])
Fmt = Annotated[Literal["json", "xml"], Path(description="response format")]
BOTH: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/xml": {}},
          "description": "GeoReport v2 document"},
    400: {"description": "GeoReport errors: [{code, description}]"},
    404: {"description": "GeoReport errors: [{code, description}]"},
}


def _render(fmt: str, data: Any, root: str, item: str = "") -> Response:
    if fmt == "xml":
        return Response(open311.to_xml(root, data, item), media_type="text/xml; charset=utf-8")
    return JSONResponse(data)


@router.get("/services.{fmt}", operation_id="open311_services", response_class=Response,
            responses=BOTH)
def get_services(fmt: Fmt, session: SessionDep, jurisdiction_id: str | None = None) -> Response:
    """GeoReport GET services."""
    return _render(fmt, open311.services(session), "services", "service")


@router.get("/services/{service_code}.{fmt}", operation_id="open311_service_definition",
            response_class=Response, responses=BOTH)
def get_service(service_code: str, fmt: Fmt, session: SessionDep,
                jurisdiction_id: str | None = None) -> Response:
    """GeoReport GET service definition."""
    return _render(fmt, open311.service_definition(session, service_code),
                   "service_definition")


@router.post("/requests.{fmt}", operation_id="open311_post_request", response_class=Response,
             responses=BOTH)
async def post_request(fmt: Fmt, request: Request, session: SessionDep,
                       clock: ClockDep, lookup: LookupDep, principal: PrincipalDep) -> Response:
    """GeoReport POST service request (form-encoded fields as in the spec)."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    created = open311.post_request(session, form, clock.now(), lookup, principal)
    return _render(fmt, created, "service_requests", "request")


@router.get("/requests.{fmt}", operation_id="open311_get_requests", response_class=Response,
            responses=BOTH)
def get_requests(
    fmt: Fmt, session: SessionDep, clock: ClockDep, principal: PrincipalDep,
    service_request_id: str | None = None,
    service_code: str | None = None, start_date: str | None = None,
    end_date: str | None = None, status: str | None = None,
    jurisdiction_id: str | None = None,
) -> Response:
    """GeoReport GET service requests with its filters."""
    found = open311.find_requests(session, clock.now(), service_request_id=service_request_id,
                                  service_code=service_code, start_date=start_date,
                                  end_date=end_date, status=status, principal=principal)
    return _render(fmt, found, "service_requests", "request")


@router.get("/requests/{request_id}.{fmt}", operation_id="open311_get_request",
            response_class=Response, responses=BOTH)
def get_request(request_id: str, fmt: Fmt, session: SessionDep, principal: PrincipalDep,
                jurisdiction_id: str | None = None) -> Response:
    """GeoReport GET service request (404 outside the caller's area)."""
    return _render(fmt, open311.get_request(session, request_id, principal),
                   "service_requests", "request")


@router.get("/tokens/{token_id}.{fmt}", operation_id="open311_get_token",
            response_class=Response, responses=BOTH)
def get_token(token_id: str, fmt: Fmt, session: SessionDep, principal: PrincipalDep,
              jurisdiction_id: str | None = None) -> Response:
    """GeoReport GET service_request_id from a token (404 outside the caller's area)."""
    return _render(fmt, open311.token(session, token_id, principal), "service_requests",
                   "request")
