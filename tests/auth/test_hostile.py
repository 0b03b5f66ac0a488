"""Hostile input: SQL injection through every filter, limits, crafted uploads, timeouts."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path
from urllib.parse import quote

import geopandas as gpd
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine, text

from gridmap.config import Settings, get_settings
from gridmap.errors import InvalidInputError
from gridmap.ingest.reader import ReadOptions, read_layer
from tests.auth.conftest import Street

INJECTIONS = [
    "' OR '1'='1", "1; DROP TABLE areas; --", "5%' UNION SELECT id_number FROM persons --",
    "500103%", "\\", "'; SELECT pg_sleep(5); --", "\x00", "5' AND 1=CAST(version() AS int)--",
]  # fmt: skip


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.scalar(text("SELECT count(*) FROM areas")),
                conn.scalar(text("SELECT count(*) FROM persons")))  # fmt: skip


def _id_numbers(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT id_number FROM persons LIMIT 50")))


@pytest.mark.parametrize("payload", INJECTIONS)
def test_sql_injection_through_every_filter(
    client: TestClient, city_engine: Engine, street_a: Street, payload: str
) -> None:
    before = _counts(city_engine)
    secrets = _id_numbers(city_engine)
    raw, payload = payload, quote(payload, safe="")  # path segments are sent URL-encoded
    requests = [
        ("/api/v1/areas", {"q": raw}), ("/api/v1/areas", {"q": raw, "limit": raw}),
        (f"/api/v1/areas/{payload}", {}), (f"/api/v1/areas/{payload}/children", {}),
        (f"/api/v1/areas/{street_a.grid}", {"generation": raw}),
        (f"/api/v1/grids/{payload}/residents", {}),
        (f"/api/v1/grids/{street_a.grid}/residents", {"limit": raw, "offset": raw}),
        (f"/api/v1/persons/{payload}", {}),
        ("/ogc/collections/grids/items", {"bbox": raw}),
        ("/ogc/collections/grids/items", {"properties": raw}),
        ("/ogc/collections/grids/items", {"limit": raw, "offset": raw}),
        (f"/ogc/collections/{payload}/items", {}),
        (f"/ogc/collections/grids/items/{payload}", {}),
        (f"/ogc/collections/buildings/items/{payload}", {}),
        (f"/api/v1/layers/{payload}", {}), ("/api/v1/layers/grid", {"bbox": raw}),
        ("/api/v1/layers/grid", {"format": raw, "encoding": raw}),
        ("/api/v1/lookup", {"lon": raw, "lat": "29.5"}),
        ("/api/v1/lookup", {"lon": "106.5", "lat": "29.5", "crs": raw, "as_of": raw}),
        ("/api/v1/audit", {"actor": raw, "resource": raw[:32],
                           "record_id": raw, "since": raw}),
        (f"/tiles/{payload}/1/0/0.mvt", {}),
    ]  # fmt: skip
    for path, params in requests:
        response = client.get(path, params=params)
        assert response.status_code < 500, (path, params, response.text)
        assert not any(s in response.text for s in secrets), (path, params)
    login = client.post("/api/v1/auth/login", json={"username": raw, "password": raw})
    assert login.status_code in (401, 422)  # 422: a NUL byte cannot be text in PostgreSQL
    assert _counts(city_engine) == before


def test_request_body_limit(client: TestClient) -> None:
    big = {"username": "x", "password": "y" * (2 << 20)}
    response = client.post("/api/v1/auth/login", content=json.dumps(big),
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 413
    assert "limit" in response.json()["message"]


def test_rate_limit_per_key(anon_client: TestClient, as_role) -> None:  # type: ignore[no-untyped-def]
    settings = get_settings()
    headers = as_role("system")
    old = settings.rate_limit_per_minute
    settings.rate_limit_per_minute = 5
    try:
        codes = [anon_client.get("/api/v1/auth/me", headers=headers).status_code
                 for _ in range(8)]  # fmt: skip
    finally:
        settings.rate_limit_per_minute = old
    assert codes[:3] == [200] * 3 and codes[-1] == 429


def test_default_secret_refused_outside_development() -> None:
    Settings(environment="development")  # generated secret is fine here
    for secret in (None, "changeme", "short"):
        with pytest.raises(ValidationError, match="GRIDMAP_SECRET_KEY"):
            Settings(environment="production", secret_key=secret)
    Settings(environment="production", secret_key="9f" * 20)


def test_statement_timeout_is_a_clear_error(city_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.main import create_app
    from gridmap.db.engine import make_engine

    monkeypatch.setenv("GRIDMAP_STATEMENT_TIMEOUT_MS", "50")
    get_settings.cache_clear()
    engine = make_engine(city_db)
    try:
        app = create_app(engine)

        @app.get("/slow-for-test")
        def slow() -> None:  # stands for a heavy spatial query
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(2)"))

        with TestClient(app) as client:
            response = client.get("/slow-for-test")
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "QueryTimeoutError" and "timeout" in body["message"]
        assert "pg_sleep" not in response.text
    finally:
        engine.dispose()
        monkeypatch.delenv("GRIDMAP_STATEMENT_TIMEOUT_MS")
        get_settings.cache_clear()


# --- crafted uploads --------------------------------------------------------------------


def _grid_frame(geoms: list) -> gpd.GeoDataFrame:  # type: ignore[type-arg]
    codes = [f"500103001001{i + 1:03d}" for i in range(len(geoms))]
    return gpd.GeoDataFrame({"CODE": codes, "NAME": codes}, geometry=geoms, crs=4326)


def test_zip_bomb_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("grid.geojson", b" " * (64 << 20))  # 64 MiB of spaces → ~64 KiB
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(InvalidInputError, match="unpacks to"):
        read_layer(bomb, "grid", ReadOptions(max_bytes=8 << 20))


def test_zip_bomb_with_lying_sizes_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "liar.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("grid.geojson", b" " * (16 << 20))
    data = bytearray(bomb.read_bytes())
    # Declare 100 bytes in both the local header and the central directory.
    local = data.index(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, 100)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 100)
    bomb.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError):
        read_layer(bomb, "grid", ReadOptions(max_bytes=8 << 20))


def test_zip_slip_refused(tmp_path: Path) -> None:
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("/etc/cron.d/evil.geojson", b"{}")
    with pytest.raises(InvalidInputError, match="zip slip"):
        read_layer(slip, "grid")


def test_polygon_with_millions_of_vertices_refused(tmp_path: Path) -> None:
    n = 2_000_000
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.column_stack([106.5 + 0.01 * np.cos(angles), 29.5 + 0.01 * np.sin(angles)])
    path = tmp_path / "huge.fgb"
    _grid_frame([shapely.Polygon(ring)]).to_file(path, driver="FlatGeobuf")
    with pytest.raises(InvalidInputError, match=r"feature 0 has 2,000,001 vertices"):
        read_layer(path, "grid")


def test_unclosed_ring_and_infinite_coordinates_refused(tmp_path: Path) -> None:
    def feature(coords: str) -> str:
        return ('{"type":"FeatureCollection","features":[{"type":"Feature","properties":'
                '{"CODE":"500103001001001","NAME":"a"},"geometry":{"type":"Polygon",'
                f'"coordinates":[[{coords}]]}}}}]}}')  # fmt: skip

    unclosed = tmp_path / "unclosed.geojson"
    unclosed.write_text(feature("[106,29],[106.01,29],[106.01,29.01],[106,29.01]"))
    with pytest.raises(InvalidInputError, match="unclosed.geojson"):
        read_layer(unclosed, "grid")
    infinite = tmp_path / "inf.geojson"
    infinite.write_text(feature("[106,29],[1e400,29],[106.01,29.01],[106,29]"))
    with pytest.raises(InvalidInputError, match="inf.geojson"):
        read_layer(infinite, "grid")
    gpkg = tmp_path / "inf.gpkg"
    _grid_frame([shapely.Polygon([(106, 29), (float("inf"), 29), (106, 29.01)])]).to_file(gpkg)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        read_layer(gpkg, "grid")


def _two_grids_shapefile(folder: Path) -> Path:
    shp = folder / "grid.shp"
    _grid_frame([shapely.box(106, 29, 106.01, 29.01),
                 shapely.box(106.01, 29, 106.02, 29.01)]).to_file(shp)  # fmt: skip
    return shp


def test_shapefile_with_lying_shx_refused(tmp_path: Path) -> None:
    shp = _two_grids_shapefile(tmp_path)
    assert len(read_layer(shp, "grid").frame) == 2
    shx = tmp_path / "grid.shx"
    good = shx.read_bytes()
    lying = bytearray(good)
    struct.pack_into(">i", lying, 108, struct.unpack_from(">i", lying, 100)[0])
    shx.write_bytes(bytes(lying))  # both entries name the first shape
    with pytest.raises(InvalidInputError, match="grid.shx does not match grid.shp"):
        read_layer(shp, "grid")
    short = bytearray(good[:108])
    struct.pack_into(">i", short, 24, 54)
    shx.write_bytes(bytes(short))  # one entry: GDAL alone would drop a feature silently
    with pytest.raises(InvalidInputError, match="1 index entries, 2 shapes"):
        read_layer(shp, "grid")


def test_self_intersecting_upload_is_reported_not_crashed(tmp_path: Path) -> None:
    from gridmap.ingest.checks import Parents, check_layer

    bowtie = shapely.Polygon([(106, 29), (106.01, 29.01), (106.01, 29), (106, 29.01)])
    path = tmp_path / "bowtie.geojson"
    _grid_frame([bowtie]).to_file(path, driver="GeoJSON")
    read = read_layer(path, "grid")
    assert not read.frame.geometry.iloc[0].is_valid  # read as is; the checks report it
    report, _frame = check_layer(read, "grid", Parents.empty())
    assert any(f.check == "invalid_geometry" and f.index == 0 and f.severity == "error"
               for f in report.findings)


def test_hostile_uploads_over_http_never_500(client: TestClient) -> None:
    slip = io.BytesIO()
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("../../x.shp", b"x")
    for name, body in (("slip.zip", slip.getvalue()), ("x.exe", b"MZ"),
                       ("grid.geojson", b"{not json"), ("grid.zip", b"PK\x03\x04broken")):
        response = client.post("/api/v1/imports", data={"level": "grid"},
                               files={"file": (name, body)})  # fmt: skip
        assert response.status_code < 500, (name, response.text)
        if response.status_code == 202:
            job = client.get(f"/api/v1/imports/{response.json()['id']}").json()
            assert job["status"] in ("queued", "checking", "failed", "checked")


def test_the_general_body_limit_does_not_change_the_events_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gridmap.events.settings import get_event_settings

    monkeypatch.setenv("GRIDMAP_MAX_BODY_BYTES", "1000")
    get_settings.cache_clear()
    get_event_settings.cache_clear()
    try:
        assert get_settings().max_body_bytes == 1000
        assert get_event_settings().events_max_body_bytes == 16 * 1024 * 1024
    finally:
        get_settings.cache_clear()
        get_event_settings.cache_clear()
