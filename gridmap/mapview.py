"""Static maps: a standalone folium (Leaflet) HTML map of one area that works offline.

folium links Leaflet, jQuery and Bootstrap from CDNs by default; command centers often
run on closed networks, so the map drops those links and inlines Leaflet's JavaScript
and CSS from the npm-installed ``leaflet`` package instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import folium
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridmap.areas import get_area
from gridmap.config import get_settings
from gridmap.errors import SetupError
from gridmap.generations import valid_in
from gridmap.models import Area, Building, Event, Facility
from gridmap.models.events import CLOSED_STATUSES

REPO = Path(__file__).resolve().parents[1]
MAJOR_COLORS = {"01": "#1f77b4", "02": "#ff7f0e", "03": "#2ca02c",
                "04": "#17becf", "05": "#9467bd", "06": "#7f7f7f"}  # fmt: skip
LIGHT_COLORS = {"green": "#1a9850", "yellow": "#fdae61", "red": "#d7191c", None: "#6b7280"}
EVENT_FIELDS = ["id", "category", "status", "priority", "traffic_light", "deadline"]


def vendor_dir() -> Path:
    """Where npm installed the web scripts (``GRIDMAP_WEB_VENDOR_DIR`` or ./node_modules)."""
    return get_settings().web_vendor_dir or REPO / "node_modules"


def _inline_leaflet() -> str:
    dist = vendor_dir() / "leaflet" / "dist"
    try:
        js = (dist / "leaflet.js").read_text("utf-8")
        css = (dist / "leaflet.css").read_text("utf-8")
    except FileNotFoundError:
        raise SetupError(
            f"Leaflet is not installed under {dist}: run `make setup` (npm ci)"
        ) from None
    js = js.replace("</script", "<\\/script")
    return f"<style>{css}</style>\n<script>{js}</script>"


def _collection(rows: Sequence[Any]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": json.loads(geom), "properties": props}
            for props, geom in rows
        ],
    }


def _open_events(session: Session, prefix: str) -> list[tuple[dict[str, Any], str]]:
    """The open events under grid-code ``prefix`` as (properties, GeoJSON) — no personal data."""
    from gridmap.events import cache
    from gridmap.events.deadlines import Calendar, traffic_light

    events = session.scalars(
        select(Event).where(Event.grid_code.startswith(prefix, autoescape=True),
                            Event.status.not_in(CLOSED_STATUSES)).order_by(Event.id)
    ).all()  # fmt: skip
    if not events:
        return []
    calendar = Calendar.load(session)
    now = datetime.now(UTC)
    out = []
    for event in events:
        category = cache.category(session, event.category_code)
        light = traffic_light(calendar, category, event, now) if category else None
        props = {"id": event.id, "category": event.category_code, "status": event.status,
                 "priority": event.priority, "traffic_light": light,
                 "deadline": event.deadline.isoformat() if event.deadline else None}
        out.append((props, json.dumps({"type": "Point", "coordinates": [event.lon, event.lat]})))
    return out


def _open_counts(session: Session, prefix: str) -> dict[str, int]:
    rows = session.execute(
        select(Event.grid_code, func.count()).where(
            Event.grid_code.startswith(prefix, autoescape=True),
            Event.status.not_in(CLOSED_STATUSES)).group_by(Event.grid_code)
    ).all()  # fmt: skip
    return {str(code): int(n) for code, n in rows}


def area_layers(session: Session, code: str) -> dict[str, dict[str, Any]]:
    """GeoJSON of the grids (with ``open_events``), buildings, facilities and open events
    inside area ``code`` (no personal data)."""
    detail = get_area(session, code)
    prefix = detail.area.code if detail.area.level != "city" else detail.area.code[:2]
    grids = session.execute(
        select(
            func.json_build_object("code", Area.code, "name", Area.name),
            func.ST_AsGeoJSON(Area.geom, 7),
        ).where(Area.level == "grid", Area.code.startswith(prefix, autoescape=True),
                valid_in(detail.generation)).order_by(Area.code)
    ).all()  # fmt: skip
    buildings = session.execute(
        select(
            func.json_build_object("code", Building.code, "use", Building.use,
                                   "floors", Building.floors),
            func.ST_AsGeoJSON(Building.geom, 7),
        ).where(Building.grid_code.startswith(prefix, autoescape=True)).order_by(Building.code)
    ).all()  # fmt: skip
    facilities = session.execute(
        select(
            func.json_build_object("code", Facility.code, "name", Facility.name,
                                   "major_code", Facility.major_code, "state", Facility.state),
            func.ST_AsGeoJSON(Facility.geom, 7),
        ).where(Facility.grid_code.startswith(prefix, autoescape=True)).order_by(Facility.code)
    ).all()  # fmt: skip
    counts = _open_counts(session, prefix)
    counted = [({**props, "open_events": counts.get(props["code"], 0)}, geom)
               for props, geom in grids]
    return {"grids": _collection(counted), "buildings": _collection(buildings),
            "facilities": _collection(facilities),
            "events": _collection(_open_events(session, prefix)),
            "bbox": {"value": list(detail.bbox)}}


def grid_fill(open_events: int) -> str:
    """The fill colour of a grid by its open events (as on the live map)."""
    if open_events <= 0:
        return "#a6d96a"
    return "#fdae61" if open_events < 5 else "#d7191c"


def area_map(session: Session, code: str) -> folium.Map:
    """A folium map of area ``code``: grids shaded by open events, buildings, facilities and
    open events by traffic light, Leaflet inlined."""
    layers = area_layers(session, code)
    w, s, e, n = layers["bbox"]["value"]
    m = folium.Map(tiles=None, control_scale=True, prefer_canvas=True)
    m.default_js = []  # no CDN links: Leaflet is inlined below, the rest is not needed
    m.default_css = []
    root: Any = m.get_root()  # a branca Figure: it has the <head> ("header")
    root.header.add_child(folium.Element(_inline_leaflet()), name="leaflet_inline")
    basemap = get_settings().basemap_url
    if basemap:
        folium.TileLayer(basemap, attr="base map (GRIDMAP_BASEMAP_URL)").add_to(m)
    folium.GeoJson(
        layers["grids"], name="grids",
        style_function=lambda f: {"color": "#4d7c0f", "weight": 1, "fillOpacity": 0.35,
                                  "fillColor": grid_fill(f["properties"]["open_events"])},
        tooltip=folium.GeoJsonTooltip(["code", "name", "open_events"]),
    ).add_to(m)  # fmt: skip
    if layers["buildings"]["features"]:
        folium.GeoJson(
            layers["buildings"], name="buildings",
            style_function=lambda _f: {"color": "#7f5539", "weight": 0.5,
                                       "fillColor": "#b08968", "fillOpacity": 0.8},
            tooltip=folium.GeoJsonTooltip(["code", "use", "floors"]),
        ).add_to(m)  # fmt: skip
    if layers["facilities"]["features"]:
        folium.GeoJson(
            layers["facilities"], name="facilities",
            marker=folium.CircleMarker(radius=4, weight=1, fill=True, fill_opacity=0.9),
            style_function=lambda f: {"color": MAJOR_COLORS.get(
                f["properties"]["major_code"], "#000"),
                "fillColor": MAJOR_COLORS.get(f["properties"]["major_code"], "#000")},
            tooltip=folium.GeoJsonTooltip(["code", "name", "state"]),
        ).add_to(m)  # fmt: skip
    if layers["events"]["features"]:
        folium.GeoJson(
            layers["events"], name="events (open)",
            marker=folium.CircleMarker(radius=6, weight=2, fill=True, fill_opacity=0.95),
            style_function=lambda f: {"color": "#fff",
                "fillColor": LIGHT_COLORS.get(f["properties"]["traffic_light"], "#6b7280")},
            tooltip=folium.GeoJsonTooltip(EVENT_FIELDS),
        ).add_to(m)  # fmt: skip
    folium.LayerControl(collapsed=False).add_to(m)
    m.fit_bounds([[s, w], [n, e]])
    return m


def write_area_map(session: Session, code: str, out: Path) -> Path:
    """Write the standalone HTML map of area ``code`` to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    area_map(session, code).save(str(out))
    return out
