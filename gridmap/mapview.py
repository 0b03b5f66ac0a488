"""Static maps: a standalone folium (Leaflet) HTML map of one area that works offline.

folium links Leaflet, jQuery and Bootstrap from CDNs by default; command centers often
run on closed networks, so the map drops those links and inlines Leaflet's JavaScript
and CSS from the npm-installed ``leaflet`` package instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import folium
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridmap.areas import get_area
from gridmap.config import get_settings
from gridmap.errors import SetupError
from gridmap.generations import valid_in
from gridmap.models import Area, Building, Facility

REPO = Path(__file__).resolve().parents[1]
MAJOR_COLORS = {"01": "#1f77b4", "02": "#ff7f0e", "03": "#2ca02c",
                "04": "#17becf", "05": "#9467bd", "06": "#7f7f7f"}  # fmt: skip


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


def area_layers(session: Session, code: str) -> dict[str, dict[str, Any]]:
    """GeoJSON of the grids, buildings and facilities inside area ``code`` (no personal data)."""
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
    return {"grids": _collection(grids), "buildings": _collection(buildings),
            "facilities": _collection(facilities), "bbox": {"value": list(detail.bbox)}}


def area_map(session: Session, code: str) -> folium.Map:
    """A folium map of area ``code``: grids, buildings and facilities, Leaflet inlined."""
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
        style_function=lambda _f: {"color": "#4d7c0f", "weight": 1, "fillColor": "#a6d96a",
                                   "fillOpacity": 0.35},
        tooltip=folium.GeoJsonTooltip(["code", "name"]),
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
    folium.LayerControl(collapsed=False).add_to(m)
    m.fit_bounds([[s, w], [n, e]])
    return m


def write_area_map(session: Session, code: str, out: Path) -> Path:
    """Write the standalone HTML map of area ``code`` to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    area_map(session, code).save(str(out))
    return out
