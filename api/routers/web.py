"""The command-center page (served at ``/``) and its configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from api.dependencies import SessionDep
from api.security import PrincipalDep
from gridmap.catalog import MAJOR_CLASSES
from gridmap.config import get_settings
from gridmap.events.lifecycle import ACTIONS
from tiles.features import city_extent
from tiles.layers import LAYERS

REPO = Path(__file__).resolve().parents[2]
WEB_DIR = REPO / "web"

router = APIRouter(tags=["web"])


@router.get(
    "/",
    operation_id="get_map_page",
    response_class=FileResponse,
    responses={200: {"content": {"text/html": {}}, "description": "the map page"}},
)
def map_page() -> FileResponse:
    """The command-center map (MapLibre GL JS, vector tiles, no CDN)."""
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


@router.get(
    "/login",
    operation_id="get_login_page",
    response_class=FileResponse,
    responses={200: {"content": {"text/html": {}}, "description": "the login page"}},
)
def login_page() -> FileResponse:
    """The login form (sets the session cookie the map's requests carry)."""
    return FileResponse(WEB_DIR / "login.html", media_type="text/html")


EVENTS_STREAM = "/api/v1/events/stream"
# The SSE feed names each message after the audited action (``event: accept`` …): an
# EventSource only hands named messages to listeners registered for those names.
EVENT_KINDS = ["report", "assign", "link_duplicate", "created", *ACTIONS]


@router.get("/map/config.json", operation_id="get_map_config", response_model=dict[str, Any])
def map_config(request: Request, session: SessionDep, _principal: PrincipalDep) -> Any:
    """What the page needs: layers, city bounds, facility classes, optional base map, the
    live event feed and the names of its messages, and how long a tile server may answer
    from its snapshot of the layer versions (the page refreshes tiles after a live event
    only once that has passed)."""
    settings = get_settings()
    return {
        "bounds": list(city_extent(session)),
        "basemap_url": settings.basemap_url,
        "layers": [
            {"name": s.name, "title": s.title, "minzoom": s.minzoom, "maxzoom": s.maxzoom}
            for s in LAYERS.values()
        ],
        "facility_classes": MAJOR_CLASSES,
        "events_stream": getattr(request.app.state, "events_stream", EVENTS_STREAM),
        "event_kinds": EVENT_KINDS,
        "tile_version_ttl_ms": round(settings.tile_version_ttl_s * 1000),
    }
