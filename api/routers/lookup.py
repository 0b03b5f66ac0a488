"""Point → grid lookup: one point (GET) or a batch (POST JSON, CSV or GeoJSON)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio
import numpy as np
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool

from api.dependencies import LookupDep
from api.schemas import ErrorOut, LookupBatchOut, LookupOut
from api.security import PrincipalDep
from gridmap.auth.principal import Principal
from gridmap.auth.scope import covers
from gridmap.errors import InvalidInputError, PermissionDeniedError
from gridmap.lookup.service import LookupService, PointResults
from gridmap.lookup.tabular import CsvLookup

router = APIRouter(prefix="/api/v1", tags=["lookup"])

CrsQuery = Annotated[
    str,
    Query(description="4326, 4490, 3857, 4513-4554 (CGCS2000 Gauss-Kruger), gcj02 or bd09"),
]
AsOfQuery = Annotated[
    str | None, Query(description="generation id or ISO 8601 timestamp (default: now)")
]
SnapQuery = Annotated[
    float | None,
    Query(description="outside every grid: snap to the nearest grid within this many metres"),
]
ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}, 422: {"model": ErrorOut}}
MAX_JSON_BODY = 256 * 1024 * 1024
SPOOL_BYTES = 16 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
NO_GRID: dict[str, Any] = {"grid": None, "ancestors": {}, "workers": []}


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def single_answer(service: LookupService, res: PointResults, crs: str,
                  principal: Principal | None = None) -> dict[str, Any]:
    """The JSON answer for one looked-up point.

    An area-scoped caller (operator of a street, grid worker) learns only grids of their
    own area: a point elsewhere is answered like a point outside every grid.
    """
    grid = int(res.index[0])
    described = service.describe(res.snapshot, grid) or NO_GRID
    if principal is not None and not principal.city_wide and described["grid"] is not None \
            and not covers(principal, described["grid"]["code"]):
        described = NO_GRID
    answer: dict[str, Any] = {
        "query": {"crs": crs, "lon": float(res.lon[0]), "lat": float(res.lat[0])},
        "generation": res.generation,
        **described,
    }
    if res.distance_m is not None:
        distance = float(res.distance_m[0])
        answer["distance_m"] = None if np.isnan(distance) else round(distance, 3)
    return answer


@router.get(
    "/lookup", operation_id="lookup_point", response_model=LookupOut, responses=ERRORS
)
async def lookup_point(
    service: LookupDep,
    principal: PrincipalDep,
    lon: Annotated[float, Query(description="longitude (or easting for projected CRSs)")],
    lat: Annotated[float, Query(description="latitude (or northing)")],
    crs: CrsQuery = "4326",
    as_of: AsOfQuery = None,
    snap: SnapQuery = None,
) -> Response:
    """Which grid is this point in? With the grid's ancestors and workers (on duty first).

    Area-scoped callers get ``grid: null`` for points outside their own area.
    """
    res = service.locate_one(lon, lat, crs, as_of, snap)
    if res.errors:
        message = res.errors[0]
        raise InvalidInputError(message, details=[{"field": message.split(":")[0]}])
    return _json(single_answer(service, res, crs, principal))


@router.post(
    "/lookup",
    operation_id="lookup_batch",
    response_model=LookupBatchOut,
    responses={
        200: {
            "content": {
                "application/json": {},
                "text/csv": {},
                "application/geo+json": {},
            },
            "description": "answers in input order (same media type as the request)",
        },
        **ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["points"],
                        "properties": {
                            "points": {
                                "type": "array",
                                "items": {"type": "array", "items": {"type": "number"}},
                            },
                            "crs": {"type": "string"},
                            "as_of": {"type": "string"},
                            "snap": {"type": "number"},
                        },
                    }
                },
                "text/csv": {"schema": {"type": "string"}},
                "application/geo+json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def lookup_batch(
    request: Request,
    service: LookupDep,
    principal: PrincipalDep,
    crs: CrsQuery = "4326",
    as_of: AsOfQuery = None,
    snap: SnapQuery = None,
) -> Response:
    """Many points at once: JSON ``{"points": [[lon, lat], …]}``, CSV or GeoJSON.

    CSV is streamed: lines in, lines out with ``grid_code`` and ``error`` columns.
    Bad rows are reported per row; the good ones are answered. For city-wide callers
    (systems, admins, GIS editors, city operators); area-scoped callers ask point by point.
    """
    if not principal.city_wide:
        raise PermissionDeniedError("batch lookups are for city-wide callers; "
                                    "an area-scoped caller looks up one point at a time")
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media == "text/csv":
        return await _csv_response(request, service, crs, as_of, snap)
    body = await _read_json(request)
    if media == "application/geo+json" or body.get("type") == "FeatureCollection":
        return await anyio.to_thread.run_sync(_geojson_batch, service, body, crs, as_of, snap)
    return await anyio.to_thread.run_sync(_json_batch, service, body, crs, as_of, snap)


async def _read_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_JSON_BODY:
        raise InvalidInputError(f"request body over {MAX_JSON_BODY} bytes; send CSV instead")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidInputError("request body must be a JSON object with a 'points' array")
    return body


def _points_array(points: Any) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    if not isinstance(points, list):
        raise InvalidInputError(
            "'points' must be an array of [lon, lat] pairs", details=[{"field": "points"}]
        )
    xs = np.full(len(points), np.nan)
    ys = np.full(len(points), np.nan)
    bad: dict[int, str] = {}
    try:  # fast path: a clean list of numeric pairs
        arr = np.asarray(points, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] == 2:
            return arr[:, 0].copy(), arr[:, 1].copy(), bad
    except (ValueError, TypeError):
        pass
    for row, point in enumerate(points):
        ok = (
            isinstance(point, list)
            and len(point) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in point)
        )
        if ok:
            xs[row], ys[row] = point
        else:
            bad[row] = f"points[{row}]: expected [lon, lat] numbers, got {str(point)[:60]}"
    return xs, ys, bad


def _batch_params(body: dict[str, Any], crs: str, as_of: str | None, snap: float | None):  # type: ignore[no-untyped-def]
    return body.get("crs", crs), body.get("as_of", as_of), body.get("snap", snap)


def _json_batch(
    service: LookupService, body: dict[str, Any], crs: str, as_of: str | None, snap: float | None
) -> Response:
    crs, as_of, snap = _batch_params(body, crs, as_of, snap)
    xs, ys, bad = _points_array(body.get("points"))
    res = service.locate(xs, ys, str(crs), as_of, snap)
    codes = res.snapshot.index.codes
    results: list[dict[str, Any]] = []
    for row, grid in enumerate(res.index.tolist()):
        problem = bad.get(row) or _row_error(res, row, "points")
        if problem:
            results.append({"grid": None, "error": problem})
        else:
            results.append({"grid": codes[grid] if grid >= 0 else None})
    if res.distance_m is not None:
        for row, distance in enumerate(res.distance_m.tolist()):
            if results[row]["grid"] is not None:
                results[row]["distance_m"] = round(distance, 3)
    errors = sum(1 for r in results if "error" in r)
    return _json({"generation": res.generation, "count": len(results), "errors": errors,
                  "results": results})


def _row_error(res: PointResults, row: int, prefix: str) -> str | None:
    message = res.errors.get(row)
    return f"{prefix}[{row}]: {message}" if message else None


def _geojson_batch(
    service: LookupService, body: dict[str, Any], crs: str, as_of: str | None, snap: float | None
) -> Response:
    features = body.get("features")
    if body.get("type") != "FeatureCollection" or not isinstance(features, list):
        raise InvalidInputError("GeoJSON body must be a FeatureCollection with 'features'")
    crs, as_of, snap = _batch_params(body, crs, as_of, snap)
    points = [_feature_point(f) for f in features]
    xs, ys, bad = _points_array([p if p is not None else "not a Point" for p in points])
    res = service.locate(xs, ys, str(crs), as_of, snap)
    codes = res.snapshot.index.codes
    for row, (feature, grid) in enumerate(zip(features, res.index.tolist(), strict=True)):
        props = feature.setdefault("properties", {}) if isinstance(feature, dict) else {}
        if props is None:
            props = feature["properties"] = {}
        problem = (
            (f"features[{row}]: geometry must be a Point" if row in bad else None)
            or _row_error(res, row, "features")
        )
        props["grid_code"] = None if problem or grid < 0 else codes[grid]
        if problem:
            props["error"] = problem
    body["generation"] = res.generation
    return Response(orjson.dumps(body), media_type="application/geo+json")


def _feature_point(feature: Any) -> list[float] | None:
    if not isinstance(feature, dict):
        return None
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        return None
    coords = geometry.get("coordinates")
    if isinstance(coords, list) and len(coords) >= 2:
        return list(coords[:2])
    return None


async def _csv_response(
    request: Request, service: LookupService, crs: str, as_of: str | None, snap: float | None
) -> Response:
    # Starlette's StreamingResponse listens for disconnects on the same receive channel
    # as the body, so the body is spooled first (to disk past SPOOL_BYTES), then the
    # answers stream out block by block.
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    async for chunk in request.stream():
        spool.write(chunk)
    spool.seek(0)
    job = CsvLookup(service, crs, as_of, snap)
    output = job.process(iter(lambda: spool.read(CHUNK_BYTES), b""))
    try:
        # Pull the header first so that a bad header is a 422, not a broken stream.
        first = await anyio.to_thread.run_sync(next, output, b"")
    except BaseException:
        spool.close()
        raise
    return StreamingResponse(
        _prepend(first, output), media_type="text/csv", background=BackgroundTask(spool.close)
    )


async def _prepend(first: bytes, rest: Iterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in iterate_in_threadpool(rest):
        yield chunk
