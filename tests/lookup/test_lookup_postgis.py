"""Every lookup path agrees with PostGIS ST_Covers + the lowest-code rule.

Paths: the in-memory service, the SQL function gridmap_lookup(), the HTTP API (single,
JSON batch, CSV, GeoJSON) — on random points, on grid vertices and on edge points.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridmap.lookup.service import LookupService

TRUTH_SQL = """
SELECT p.i, (SELECT min(a.code) FROM areas a
             WHERE a.level = 'grid' AND a.generation_high IS NULL
               AND ST_Covers(a.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), 4326)))
FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS p(x, y, i) ORDER BY p.i
"""

SQL_FUNCTION = """
SELECT gridmap_lookup(ST_SetSRID(ST_MakePoint(p.x, p.y), 4326))
FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS p(x, y, i) ORDER BY p.i
"""


@pytest.fixture(scope="module")
def service(city_db: str) -> LookupService:
    return LookupService(city_db)


@pytest.fixture(scope="module")
def probe_points(city_db: str) -> tuple[np.ndarray, np.ndarray]:
    """Random points over the city, every 3rd grid vertex, and edge midpoints."""
    with psycopg.connect(city_db) as conn:
        bbox = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) e FROM areas WHERE level = 'grid') s"
        ).fetchone()
        vertices = conn.execute(
            "SELECT ST_X(d.geom), ST_Y(d.geom) FROM areas a, ST_DumpPoints(a.geom) d "
            "WHERE a.level = 'grid' AND d.path[3] % 3 = 0"
        ).fetchall()
        edges = conn.execute(
            "SELECT ST_X(m), ST_Y(m) FROM (SELECT ST_LineInterpolatePoint("
            "ST_MakeLine(d.geom, lead(d.geom) OVER (PARTITION BY a.code ORDER BY d.path)), 0.5)"
            " AS m FROM areas a, ST_DumpPoints(a.geom) d WHERE a.level = 'grid') s "
            "WHERE m IS NOT NULL"
        ).fetchall()
    assert bbox is not None
    rng = np.random.default_rng(11)
    x0, y0, x1, y1 = bbox
    pad = 0.02
    rx = rng.uniform(x0 - pad, x1 + pad, 3000)
    ry = rng.uniform(y0 - pad, y1 + pad, 3000)
    vx, vy = np.array(vertices, dtype=float).T
    ex, ey = np.array(edges, dtype=float).T
    return np.concatenate([rx, vx, ex]), np.concatenate([ry, vy, ey])


def _truth(city_db: str, xs: np.ndarray, ys: np.ndarray) -> list[str | None]:
    with psycopg.connect(city_db) as conn:
        return [r[1] for r in conn.execute(TRUTH_SQL, (xs.tolist(), ys.tolist()))]


def test_service_equals_postgis(service, city_db, probe_points) -> None:
    xs, ys = probe_points
    truth = _truth(city_db, xs, ys)
    res = service.locate(xs, ys)
    assert res.snapshot.index.codes_for(res.index) == truth
    assert sum(t is None for t in truth) > 0, "probe should include outside points"
    assert len({t for t in truth if t}) > 50


def test_sql_function_equals_postgis(city_db, probe_points) -> None:
    xs, ys = probe_points
    with psycopg.connect(city_db) as conn:
        got = [r[0] for r in conn.execute(SQL_FUNCTION, (xs.tolist(), ys.tolist()))]
    assert got == _truth(city_db, xs, ys)


def test_shared_vertex_goes_to_lowest_code(service, city_db) -> None:
    with psycopg.connect(city_db) as conn:
        row = conn.execute(
            """
            SELECT ST_X(d.geom), ST_Y(d.geom), array_agg(b.code ORDER BY b.code)
            FROM areas a, ST_DumpPoints(a.geom) d, areas b
            WHERE a.level = 'grid' AND b.level = 'grid' AND ST_Covers(b.geom, d.geom)
            GROUP BY 1, 2 HAVING count(DISTINCT b.code) >= 3 LIMIT 1
            """
        ).fetchone()
    assert row is not None
    x, y, owners = row
    res = service.locate([x], [y])
    assert res.snapshot.index.codes[int(res.index[0])] == owners[0]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    fx=st.floats(min_value=0.0, max_value=1.0),
    fy=st.floats(min_value=0.0, max_value=1.0),
)
def test_property_random_point_matches_sql(service, city_db, fx: float, fy: float) -> None:
    import shapely

    index = service.active().index
    x0, y0, x1, y1 = shapely.total_bounds(index._geoms)  # noqa: SLF001
    x, y = x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)
    with psycopg.connect(city_db) as conn:
        row = conn.execute(
            "SELECT gridmap_lookup(ST_SetSRID(ST_MakePoint(%s, %s), 4326))", (x, y)
        ).fetchone()
    assert row is not None
    res = service.locate([x], [y])
    assert index.codes_for(res.index)[0] == row[0]


def test_api_single_lookup(client, service, probe_points) -> None:
    xs, ys = probe_points
    res = service.locate(xs[:50], ys[:50])
    codes = res.snapshot.index.codes_for(res.index)
    for x, y, code in zip(xs[:50], ys[:50], codes, strict=True):
        body = client.get("/api/v1/lookup", params={"lon": x, "lat": y}).json()
        if code is None:
            assert body["grid"] is None
            continue
        assert body["grid"]["code"] == code
        assert body["ancestors"]["community"]["code"] == code[:12]
        assert body["ancestors"]["district"]["code"] == code[:6]
        assert body["workers"], "every sample grid has a worker"
        duty = [w["on_duty"] for w in body["workers"]]
        assert duty == sorted(duty, reverse=True)


def test_api_batch_json_csv_geojson_agree(client, service, probe_points) -> None:
    xs, ys = probe_points
    expected = service.locate(xs, ys)
    want = expected.snapshot.index.codes_for(expected.index)
    points = [[float(x), float(y)] for x, y in zip(xs, ys, strict=True)]

    body = client.post("/api/v1/lookup", json={"points": points}).json()
    assert [r["grid"] for r in body["results"]] == want

    text = "id,lon,lat,note\n" + "".join(
        f"{i},{x!r},{y!r},n{i}\n" for i, (x, y) in enumerate(points)
    )
    resp = client.post("/api/v1/lookup", content=text, headers={"content-type": "text/csv"})
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["grid_code"] or None for r in rows] == want
    assert [r["note"] for r in rows[:3]] == ["n0", "n1", "n2"]

    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"i": i},
                "geometry": {"type": "Point", "coordinates": p},
            }
            for i, p in enumerate(points[:200])
        ],
    }
    resp = client.post("/api/v1/lookup", json=fc, headers={"content-type": "application/geo+json"})
    got = [f["properties"]["grid_code"] for f in resp.json()["features"]]
    assert got == want[:200]


def test_gcj02_input_is_converted(client, service, probe_points) -> None:
    from gridmap.lookup.crs import wgs84_to_gcj02

    xs, ys = probe_points
    gx, gy = wgs84_to_gcj02(xs[:300], ys[:300])
    raw = service.locate(xs[:300], ys[:300])
    converted = service.locate(gx, gy, crs="gcj02")
    assert np.array_equal(raw.index, converted.index)
    shifted = service.locate(gx, gy, crs="4326")
    assert not np.array_equal(raw.index, shifted.index), "GCJ-02 taken raw lands elsewhere"
    x, y = float(gx[0]), float(gy[0])
    body = client.get("/api/v1/lookup", params={"lon": x, "lat": y, "crs": "gcj02"}).json()
    code = raw.snapshot.index.codes_for(raw.index[:1])[0]
    assert (body["grid"] or {}).get("code") == code


def test_outside_and_snap(client, service) -> None:
    import shapely

    index = service.active().index
    geoms = index._geoms  # noqa: SLF001 — the division under test
    east = int(np.argmax(shapely.bounds(geoms)[:, 2]))
    coords = shapely.get_coordinates(geoms[east])
    px, py = coords[np.argmax(coords[:, 0])]  # easternmost vertex of the city
    outside = {"lon": px + 0.001, "lat": py}  # ~97 m further east at 29.5°N
    assert client.get("/api/v1/lookup", params=outside).json()["grid"] is None
    far = client.get("/api/v1/lookup", params={"lon": px + 1, "lat": py, "snap": 500}).json()
    assert far["grid"] is None and far["distance_m"] is None
    snapped = client.get("/api/v1/lookup", params={**outside, "snap": 500}).json()
    assert snapped["grid"]["code"] == index.codes[east]
    assert 90 < snapped["distance_m"] < 100


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lon": 200, "lat": 29.5}, "lon"),
        ({"lon": 106.5, "lat": -95}, "lat"),
        ({"lon": "nan", "lat": 29.5}, "lon"),
        ({"lon": 106.5, "lat": 29.5, "crs": "EPSG:9999"}, "9999"),
        ({"lon": "abc", "lat": 29.5}, "lon"),
        ({"lon": 106.5, "lat": 29.5, "snap": -1}, "snap"),
        ({"lon": 106.5, "lat": 29.5, "as_of": "yesterday"}, "as_of"),
    ],
)
def test_bad_single_input_is_422_naming_the_field(client, params, field) -> None:
    resp = client.get("/api/v1/lookup", params=params)
    assert resp.status_code == 422, resp.text
    assert field in resp.json()["message"]


def test_batch_reports_bad_rows_and_answers_good_ones(client, service, probe_points) -> None:
    xs, ys = probe_points
    good = [float(xs[0]), float(ys[0])]
    want = service.locate([good[0]], [good[1]])
    code = want.snapshot.index.codes_for(want.index)[0]
    body = client.post(
        "/api/v1/lookup", json={"points": [good, [1, "x"], [500, 10], good, [1]]}
    ).json()
    results = body["results"]
    assert results[0]["grid"] == code and results[3]["grid"] == code
    assert "points[1]" in results[1]["error"]
    assert "lon" in results[2]["error"] and "points[2]" in results[2]["error"]
    assert "points[4]" in results[4]["error"]
    assert body["errors"] == 3

    text = "lon,lat\n106.5,29.5\nabc,29.5\n106.5\n"
    resp = client.post("/api/v1/lookup", content=text, headers={"content-type": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert rows[0]["error"] == ""
    assert "line 3" in rows[1]["error"] and "lon" in rows[1]["error"]
    assert "line 4" in rows[2]["error"]

    # Stray carriage returns and quotes (found by schemathesis): per-row errors, not a 500.
    text = "id,lon,lat\n1,106.5,29.5\n2,\r106.5,29.5\n3,\"106.5,29.5\n4,106.5,29.5\n"
    resp = client.post("/api/v1/lookup", content=text, headers={"content-type": "text/csv"})
    assert resp.status_code == 200, resp.text
    rows = list(csv.reader(io.StringIO(resp.text, newline=""), strict=True))[1:]
    assert [len(r) for r in rows] == [5, 5, 5, 5]  # still CSV, columns aligned
    assert [r[0] for r in rows] == ["1", "2,\r106.5,29.5", '3,"106.5,29.5', "4"]
    assert rows[0][-1] == "" and rows[3][-1] == "" and rows[0][-2] == rows[3][-2] != ""
    assert "line 3" in rows[1][-1] and "line 4" in rows[2][-1]
    bad_header = client.post("/api/v1/lookup", content=b"\r0",
                             headers={"content-type": "text/csv"})
    assert bad_header.status_code == 422 and "line 1" in bad_header.json()["message"]

    missing = client.post(
        "/api/v1/lookup", content="a,b\n1,2\n", headers={"content-type": "text/csv"}
    )
    assert missing.status_code == 422 and "longitude" in missing.json()["message"]
    assert (
        client.post(
            "/api/v1/lookup", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )


def test_fast_path_answers_exactly_like_the_full_route(client, service, probe_points) -> None:
    """``as_of`` sends a request through FastAPI; without it the ASGI fast path answers."""
    xs, ys = probe_points
    generation = service.active().generation
    for x, y in zip(xs[::97].tolist(), ys[::97].tolist(), strict=True):
        fast = client.get("/api/v1/lookup", params={"lon": x, "lat": y})
        full = client.get("/api/v1/lookup", params={"lon": x, "lat": y, "as_of": generation})
        assert fast.status_code == full.status_code == 200
        assert fast.json() == full.json()
        assert fast.headers["content-type"] == full.headers["content-type"]


def test_batch_csv_above_the_default_body_limit_is_accepted(client) -> None:
    """Batch lookups have their own, larger body limit (a million points is ~30 MB)."""
    line = "106.5512345,29.5612345\n"
    rows = 17 * 1024 * 1024 // len(line) + 1000  # just over the 16 MiB default
    body = "lon,lat\n" + line * rows
    resp = client.post("/api/v1/lookup", content=body, headers={"content-type": "text/csv"})
    assert resp.status_code == 200, resp.text[:300]
    assert resp.text.count("\n") == rows + 1
    too_big = client.post("/api/v1/events", content=b"x" * (17 * 1024 * 1024),
                          headers={"content-type": "application/json"})
    assert too_big.status_code == 413


def test_csv_blank_lines_crlf_and_quotes_keep_line_numbers(client, service, probe_points) -> None:
    xs, ys = probe_points
    x, y = float(xs[0]), float(ys[0])
    res = service.locate([x], [y])
    code = res.snapshot.index.codes_for(res.index)[0] or ""
    text = (f'name,lon,lat\r\n"a, quoted",{x!r},{y!r}\r\n\r\n   \r\nb,{x!r},{y!r}\r\n'
            f"c,north,{y!r}\r\n")
    resp = client.post("/api/v1/lookup", content=text, headers={"content-type": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["name"] for r in rows] == ["a, quoted", "b", "c"]
    assert [r["grid_code"] for r in rows] == [code, code, ""]
    assert rows[2]["error"].startswith("line 6: lon")
