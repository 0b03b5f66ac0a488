"""Upload API: POST /imports → job with report → commit; layers export."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gridmap.db.engine import make_engine
from tests.conftest import make_key


@pytest.fixture
def writable_client(
    city_factory: Callable[[], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[TestClient]:
    """An API client on its own (writable) sample-city database."""
    from api.main import create_app
    from gridmap.config import get_settings

    monkeypatch.setenv("GRIDMAP_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    engine = make_engine(city_factory())
    with TestClient(create_app(engine)) as client:
        client.headers["Authorization"] = f"Bearer {make_key(engine, 'admin')}"
        yield client
    engine.dispose()
    get_settings.cache_clear()


def test_upload_check_commit_and_export(writable_client: TestClient) -> None:
    exported = writable_client.get("/api/v1/layers/grid", params={"format": "shapefile",
                                                                  "encoding": "GBK"})
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    response = writable_client.post(
        "/api/v1/imports", data={"level": "grid"},
        files={"file": ("grid.zip", exported.content, "application/zip")},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    job = writable_client.get(f"/api/v1/imports/{response.json()['id']}").json()
    assert job["status"] == "checked" and job["progress"] == 1.0
    assert job["report"]["errors"] == 0 and job["report"]["encoding"] == "GBK"
    assert job["report"]["diff"]["unchanged"] == job["report"]["feature_count"]
    committed = writable_client.post(f"/api/v1/imports/{job['id']}/commit")
    assert committed.status_code == 200, committed.text
    # The file matches the active generation: committed, and no identical generation made.
    assert committed.json()["status"] == "committed" and committed.json()["generation_id"] == 1
    assert committed.json()["report"]["unchanged"] is True
    assert committed.json()["message"] == "nothing changed: generation 1 stays active"
    assert [g["id"] for g in writable_client.get("/api/v1/generations").json()] == [1]
    again = writable_client.post(f"/api/v1/imports/{job['id']}/commit")
    assert again.status_code == 409
    geojson = writable_client.get("/api/v1/layers/grid", params={"generation": 1})
    assert geojson.status_code == 200 and len(geojson.json()["features"]) == 300


def test_bad_uploads_are_clear_errors(writable_client: TestClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../escape.shp", b"x")
    job = writable_client.post("/api/v1/imports", data={"level": "grid"},
                               files={"file": ("evil.zip", buf.getvalue())}).json()  # fmt: skip
    job = writable_client.get(f"/api/v1/imports/{job['id']}").json()
    assert job["status"] == "failed" and "zip slip" in job["message"]
    assert writable_client.post(f"/api/v1/imports/{job['id']}/commit").status_code == 409
    bad_name = writable_client.post("/api/v1/imports", data={"level": "grid"},
                                    files={"file": ("../x.zip", b"x")})  # fmt: skip
    assert bad_name.status_code == 422
    assert writable_client.get("/api/v1/imports/999").status_code == 404
    assert writable_client.get("/api/v1/layers/worker").status_code == 422
    assert writable_client.get("/api/v1/layers/grid", params={"bbox": "1,2"}).status_code == 422


def test_worker_with_an_empty_name_is_a_report_error_not_a_500(
    writable_client: TestClient,
) -> None:
    grid = writable_client.get("/api/v1/layers/grid").json()["features"][0]["properties"]["code"]
    csv = (f"code,name,phone,role,grid_code\nWTEST001,,13800000000,full_time,{grid}\n"
           f"WTEST002,测试,,part_time,{grid}\n")  # fmt: skip
    response = writable_client.post("/api/v1/imports", data={"level": "worker"},
                                    files={"file": ("workers.csv", csv.encode(), "text/csv")})
    assert response.status_code == 202, response.text
    job = writable_client.get(f"/api/v1/imports/{response.json()['id']}").json()
    assert job["status"] == "checked" and job["report"]["errors"] == 1
    assert job["message"] == "1 error(s) (1 missing_value), 0 warning(s), 0 info"
    assert job["report"]["findings"][0]["message"] == "name is empty (field 'name')"
    committed = writable_client.post(f"/api/v1/imports/{job['id']}/commit")
    assert committed.status_code == 422, committed.text
    assert "error(s) in the report block commit" in committed.json()["message"]


def _upload(client: TestClient, content: bytes, name: str = "grid.zip") -> dict[str, object]:
    response = client.post("/api/v1/imports", data={"level": "grid"},
                           files={"file": (name, content)})  # fmt: skip
    assert response.status_code == 202, response.text
    job = client.get(f"/api/v1/imports/{response.json()['id']}").json()
    assert job["status"] == "checked", job
    return dict(job)


def _grids_renamed(client: TestClient, *features: int) -> list[bytes]:
    """The grid layer as GeoJSON, once for each of ``features`` with that feature
    renamed: files that differ from the active generation and from each other."""
    exported = client.get("/api/v1/layers/grid").json()
    files = []
    for i in features:
        copy = json.loads(json.dumps(exported))
        copy["features"][i]["properties"]["name"] += " (renamed)"
        files.append(json.dumps(copy).encode())
    return files


def test_commit_publishes_the_checked_plan_without_reading_again(
    writable_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same process, same file, same active generation: the file is not read again.
    A file changed on disk, or another generation activated, is prepared afresh."""
    from gridmap.ingest import jobs, publish

    renamed = _grids_renamed(writable_client, 0, 1, 2)
    reads: list[str] = []
    real = publish.read_layer
    monkeypatch.setattr(publish, "read_layer",
                        lambda *a, **k: reads.append("read") or real(*a, **k))  # fmt: skip
    first = _upload(writable_client, renamed[0], "grid.geojson")
    second = _upload(writable_client, renamed[1], "grid.geojson")
    assert reads == ["read", "read"]
    committed = writable_client.post(f"/api/v1/imports/{first['id']}/commit")
    assert committed.status_code == 200 and committed.json()["status"] == "committed"
    assert reads == ["read", "read"]  # published as checked
    # The second job was checked against generation 1; generation 2 is active now: it is
    # checked again, and the commit refused until that new report has been seen.
    stale = writable_client.post(f"/api/v1/imports/{second['id']}/commit")
    assert stale.status_code == 409 and "checked again against generation 2" in stale.text
    assert reads == ["read", "read", "read"]
    rechecked = writable_client.get(f"/api/v1/imports/{second['id']}").json()
    assert rechecked["status"] == "checked"
    assert rechecked["report"]["diff"]["previous_generation"] == 2
    again = writable_client.post(f"/api/v1/imports/{second['id']}/commit")
    assert again.status_code == 200 and again.json()["generation_id"] == 3
    assert reads == ["read", "read", "read"]  # the new report's plan, not read a third time
    third = _upload(writable_client, renamed[2], "grid.geojson")
    path = max(jobs.upload_dir().glob("*/grid.geojson"), key=lambda p: p.stat().st_mtime_ns)
    path.write_bytes(path.read_bytes() + b"\0")  # changed on disk after the check
    writable_client.post(f"/api/v1/imports/{third['id']}/commit")
    assert reads[-1] == "read" and len(reads) == 5
    assert jobs._plans.take(int(str(first["id"])), path) is None  # taken once, then gone


def test_thresholds_by_upload_and_nothing_left_of_a_refused_upload(
    writable_client: TestClient,
) -> None:
    from gridmap.ingest import jobs

    exported = writable_client.get("/api/v1/layers/grid", params={"format": "shapefile"}).content
    strict = writable_client.post(
        "/api/v1/imports", data={"level": "grid", "sliver_m2": "1e12"},
        files={"file": ("grid.zip", exported, "application/zip")},
    )  # fmt: skip
    job = writable_client.get(f"/api/v1/imports/{strict.json()['id']}").json()
    slivers = [f for f in job["report"]["findings"] if f["check"] == "sliver"]
    assert len(slivers) == job["report"]["feature_count"]  # every grid is under 1e12 m²
    before = set(jobs.upload_dir().iterdir())
    for data in ({"level": "nation"}, {"level": "grid", "gap_m2": "-1"},
                 {"level": "grid", "outside_fraction": "2"}):
        refused = writable_client.post("/api/v1/imports", data=data,
                                       files={"file": ("grid.zip", exported)})  # fmt: skip
        assert refused.status_code == 422, data
    assert set(jobs.upload_dir().iterdir()) == before


def test_an_unexpected_failure_fails_the_job_with_the_file_name_only(
    writable_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gridmap.ingest import jobs

    def broken(_conn: object, path: Path, *_args: object, **_kwargs: object) -> None:
        raise ValueError(f"cannot parse {path.parent}/unpacked/grid.shp in {path}")

    monkeypatch.setattr(jobs, "prepare_import", broken)
    exported = writable_client.get("/api/v1/layers/grid", params={"format": "shapefile"}).content
    response = writable_client.post("/api/v1/imports", data={"level": "grid"},
                                    files={"file": ("grid.zip", exported)})  # fmt: skip
    job = writable_client.get(f"/api/v1/imports/{response.json()['id']}").json()
    assert job["status"] == "failed" and "ValueError" in job["message"]
    assert "unpacked/grid.shp in grid.zip" in job["message"]
    assert str(jobs.upload_dir()) not in job["message"]


def test_a_row_the_database_refuses_at_commit_is_a_422_not_a_500(
    writable_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gridmap.ingest import jobs

    def refused(conn, *_args: object, **_kwargs: object) -> None:  # type: ignore[no-untyped-def]
        conn.execute("INSERT INTO workers (code, name) VALUES ('W1', NULL)")

    exported = writable_client.get("/api/v1/layers/grid", params={"format": "shapefile"}).content
    job = _upload(writable_client, exported)
    monkeypatch.setattr(jobs, "commit_plan", refused)
    response = writable_client.post(f"/api/v1/imports/{job['id']}/commit")
    assert response.status_code == 422 and "null value" in response.text
    after = writable_client.get(f"/api/v1/imports/{job['id']}").json()
    assert after["status"] == "checked" and "commit failed" in after["message"]


def test_a_commit_racing_another_publish_is_checked_again(
    writable_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both jobs checked against generation 1; the other one is published between this
    commit's staleness test and its write: the commit answers 409 with a new report."""
    from gridmap.ingest import jobs, publish

    first, second = (_upload(writable_client, grids, "grid.geojson")
                     for grids in _grids_renamed(writable_client, 0, 1))
    real = publish.commit_plan

    def racing(conn, plan, **kwargs):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(jobs, "commit_plan", real)
        writable_client.post(f"/api/v1/imports/{first['id']}/commit")  # wins the race
        return real(conn, plan, **kwargs)

    monkeypatch.setattr(jobs, "commit_plan", racing)
    lost = writable_client.post(f"/api/v1/imports/{second['id']}/commit")
    assert lost.status_code == 409 and "checked again against generation 2" in lost.text
    job = writable_client.get(f"/api/v1/imports/{second['id']}").json()
    assert job["status"] == "checked" and job["report"]["diff"]["previous_generation"] == 2
    again = writable_client.post(f"/api/v1/imports/{second['id']}/commit")
    assert again.status_code == 200 and again.json()["generation_id"] == 3


def test_a_check_cut_off_by_a_stopped_server_shows_as_failed(
    writable_client: TestClient,
) -> None:
    import psycopg

    from gridmap.db.engine import libpq_url

    exported = writable_client.get("/api/v1/layers/grid", params={"format": "shapefile"}).content
    job = _upload(writable_client, exported)
    engine = writable_client.app.state.engine  # type: ignore[attr-defined]
    url = libpq_url(engine.url.render_as_string(hide_password=False))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE import_jobs SET status = 'checking', progress = 0.3, message ="
                     " 'reading', updated_at = now() - interval '1 minute' WHERE id = %s",
                     (job["id"],))  # fmt: skip
        assert writable_client.get(f"/api/v1/imports/{job['id']}").json()["status"] == "checking"
        conn.execute("UPDATE import_jobs SET updated_at = now() - interval '11 minutes'"
                     " WHERE id = %s", (job["id"],))  # fmt: skip
    stalled = writable_client.get(f"/api/v1/imports/{job['id']}").json()
    assert stalled["status"] == "failed" and "upload the file again" in stalled["message"]
    assert "30%" in stalled["message"]
    assert writable_client.post(f"/api/v1/imports/{job['id']}/commit").status_code == 409


def test_recent_jobs_can_be_listed(writable_client: TestClient) -> None:
    exported = writable_client.get("/api/v1/layers/grid", params={"format": "shapefile"}).content
    first, second = _upload(writable_client, exported), _upload(writable_client, exported)
    listed = writable_client.get("/api/v1/imports").json()
    assert [j["id"] for j in listed][:2] == [second["id"], first["id"]]
    assert all(j["report"] is None for j in listed)
    failed = writable_client.get("/api/v1/imports", params={"status": "failed"}).json()
    assert failed == []
    assert writable_client.get("/api/v1/imports", params={"limit": 1}).json()[0]["id"] == \
        second["id"]  # fmt: skip


def test_job_messages_name_the_form_fields(writable_client: TestClient, tmp_path: Path) -> None:
    import geopandas as gpd
    import pyogrio
    import shapely

    gpkg = tmp_path / "two.gpkg"
    frame = gpd.GeoDataFrame({"code": ["1"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)
    for layer in ("a", "b"):
        pyogrio.write_dataframe(frame, gpkg, layer=layer, driver="GPKG")
    response = writable_client.post("/api/v1/imports", data={"level": "grid"},
                                    files={"file": ("two.gpkg", gpkg.read_bytes())})  # fmt: skip
    job = writable_client.get(f"/api/v1/imports/{response.json()['id']}").json()
    assert job["status"] == "failed" and "with the layer field" in job["message"], job
    assert "--layer" not in job["message"]


def test_a_refused_row_anywhere_is_a_422_without_the_values(
    writable_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared handler: any route on a raw connection whose statement breaks a rule."""
    from gridmap.ingest import jobs

    def refusing(conn, **_kwargs):  # type: ignore[no-untyped-def]
        conn.execute("INSERT INTO workers (code, name, phone) VALUES ('W1', NULL, '13800000000')")

    monkeypatch.setattr(jobs, "list_jobs", refusing)
    response = writable_client.get("/api/v1/imports")
    assert response.status_code == 422 and "null value" in response.text
    assert "13800000000" not in response.text  # the failing row is not echoed
