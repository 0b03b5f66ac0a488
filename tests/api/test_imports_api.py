"""Upload API: POST /imports → job with report → commit; layers export."""

from __future__ import annotations

import io
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
    assert committed.json()["status"] == "committed" and committed.json()["generation_id"] == 2
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
    assert job["report"]["findings"][0]["message"] == "name is empty (field 'name')"
    committed = writable_client.post(f"/api/v1/imports/{job['id']}/commit")
    assert committed.status_code == 422, committed.text
    assert "error(s) in the report block commit" in committed.json()["message"]


def _upload(client: TestClient, content: bytes) -> dict[str, object]:
    response = client.post("/api/v1/imports", data={"level": "grid"},
                           files={"file": ("grid.zip", content, "application/zip")})  # fmt: skip
    assert response.status_code == 202, response.text
    job = client.get(f"/api/v1/imports/{response.json()['id']}").json()
    assert job["status"] == "checked", job
    return dict(job)


def test_commit_publishes_the_checked_plan_without_reading_again(
    writable_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same process, same file, same active generation: the file is not read again.
    A file changed on disk, or another generation activated, is prepared afresh."""
    from gridmap.ingest import jobs, publish

    exported = writable_client.get("/api/v1/layers/grid", params={"format": "shapefile"}).content
    reads: list[str] = []
    real = publish.read_layer
    monkeypatch.setattr(publish, "read_layer",
                        lambda *a, **k: reads.append("read") or real(*a, **k))  # fmt: skip
    first, second = _upload(writable_client, exported), _upload(writable_client, exported)
    assert reads == ["read", "read"]
    committed = writable_client.post(f"/api/v1/imports/{first['id']}/commit")
    assert committed.status_code == 200 and committed.json()["status"] == "committed"
    assert reads == ["read", "read"]  # published as checked
    # The second job was checked against generation 1; generation 2 is active now.
    again = writable_client.post(f"/api/v1/imports/{second['id']}/commit")
    assert again.status_code == 200 and again.json()["generation_id"] == 3
    assert reads == ["read", "read", "read"]
    third = _upload(writable_client, exported)
    path = max(jobs.upload_dir().glob("*/grid.zip"), key=lambda p: p.stat().st_mtime_ns)
    path.write_bytes(path.read_bytes() + b"\0")  # changed on disk after the check
    writable_client.post(f"/api/v1/imports/{third['id']}/commit")
    assert reads[-1] == "read" and len(reads) == 5
    assert jobs._plans.take(int(str(first["id"])), path) is None  # taken once, then gone

