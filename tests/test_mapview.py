"""Static folium maps: standalone, offline (no http(s) script or style), area contents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gridmap.errors import NotFoundError
from gridmap.mapview import area_layers, write_area_map

REMOTE = re.compile(r"""<(?:script|link)\b[^>]*(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


def _a_community(engine: Engine) -> str:
    with Session(engine) as session:
        from sqlalchemy import select

        from gridmap.models import Area

        return session.scalars(
            select(Area.code).where(Area.level == "community").order_by(Area.code)
        ).first()


def test_area_map_is_offline_and_holds_the_area(city_engine: Engine, tmp_path: Path) -> None:
    code = _a_community(city_engine)
    with Session(city_engine) as session:
        layers = area_layers(session, code)
        out = write_area_map(session, code, tmp_path / "map.html")
    html = out.read_text("utf-8")
    assert not REMOTE.search(html), "the map must not load scripts or styles from the network"
    assert "L.map(" in html or "L.map (" in html
    assert "Leaflet" in html  # inlined library
    grids = layers["grids"]["features"]
    assert grids and all(f["properties"]["code"].startswith(code) for f in grids)
    assert all(f["properties"]["code"] in html for f in grids)
    for feature in layers["buildings"]["features"]:
        assert set(feature["properties"]) == {"code", "use", "floors"}


def test_unknown_area_is_not_found(city_engine: Engine) -> None:
    with Session(city_engine) as session, pytest.raises(NotFoundError):
        area_layers(session, "999999999")


def test_cli_writes_the_map(city_db: str, city_engine: Engine, tmp_path: Path) -> None:
    code = _a_community(city_engine)
    env = {"GRIDMAP_DATABASE_URL": city_db, "PATH": "/usr/bin:/bin"}
    out = tmp_path / "m.html"
    done = subprocess.run(
        [sys.executable, "-m", "gridmap", "map", "--area", code, "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert out.exists() and not REMOTE.search(out.read_text("utf-8"))
    bad = subprocess.run(
        [sys.executable, "-m", "gridmap", "map", "--area", "12ab", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert bad.returncode == 2 and "malformed" in bad.stderr
