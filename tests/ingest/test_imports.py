"""Imports against a real PostGIS: files written here (GBK, UTF-8, Gauss-Kruger), every
check triggered by a crafted file, generations, diff, re-assignment, atomicity, export."""

from __future__ import annotations

import _thread
import dataclasses
import json
import signal
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyogrio
import pytest
import shapely

from gridmap.db.locks import AREAS_WRITERS, lock_areas_writers
from gridmap.errors import ConflictError, InvalidInputError
from gridmap.ingest import publish
from gridmap.ingest.checks import Thresholds, check_layer, m2
from gridmap.ingest.compare import load_parents
from gridmap.ingest.export import export_layer, parse_bbox
from gridmap.ingest.publish import check_and_publish, commit_plan, import_file, prepare_import
from gridmap.ingest.reader import ReadOptions, read_layer
from sample_data.city import SampleCity
from sample_data.redivide import split_in_two
from tests.ingest.delivered import grids_as_delivered as _grids

Connect = Callable[[], psycopg.Connection]


@pytest.fixture
def city_conn(city_factory: Callable[[], str]) -> Iterator[psycopg.Connection]:
    """A connection to a fresh database holding the sample city (writable)."""
    with psycopg.connect(city_factory()) as conn:
        yield conn


def _write(frame: gpd.GeoDataFrame, path: Path, encoding: str = "UTF-8", **kw: object) -> Path:
    pyogrio.write_dataframe(frame, path, encoding=encoding, **kw)
    return path


def _split_first(frame: gpd.GeoDataFrame, new_code: str) -> gpd.GeoDataFrame:
    """``frame`` with its first grid cut in two: the west half keeps the code, the east
    half is a new grid ``new_code`` under the same parent."""
    halves = split_in_two(frame.geometry[0])
    assert halves is not None
    west, east = halves
    frame.loc[0, "geometry"] = west
    added = gpd.GeoDataFrame([{"DM": new_code, "MC": "新网格", "SJDM": frame.SJDM[0],
                               "geometry": east}], geometry="geometry", crs=frame.crs)
    return pd.concat([frame, added], ignore_index=True)


def _one(conn: psycopg.Connection, query: str, params: tuple = ()) -> object:
    row = conn.execute(query, params).fetchone()  # type: ignore[call-overload]
    assert row is not None
    return row[0]


# --- reading ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["GBK", "UTF-8"])
def test_chinese_names_round_trip_in_gbk_and_utf8(
    tmp_path: Path, sample_city: SampleCity, encoding: str
) -> None:
    frame = _grids(sample_city)
    shp = _write(frame, tmp_path / "grid.shp", encoding)
    (tmp_path / "grid.cpg").unlink()  # auto-detection, not the .cpg, must find it
    read = read_layer(shp, "grid")
    assert read.encoding_used == encoding
    assert read.frame.name.tolist() == frame.MC.tolist()
    assert read.fields == {"code": "DM", "name": "MC", "parent": "SJDM"}


def test_gauss_kruger_is_reprojected(tmp_path: Path, sample_city: SampleCity) -> None:
    frame = _grids(sample_city)
    shp = _write(frame.to_crs(4545), tmp_path / "grid.shp")  # CGCS2000 GK CM 108E
    read = read_layer(shp, "grid")
    assert read.crs_used == "EPSG:4545"
    drift = shapely.hausdorff_distance(read.frame.geometry.to_numpy(), frame.geometry.to_numpy())
    assert drift.max() < 1e-6


def test_no_crs_refused_unless_lonlat(tmp_path: Path, sample_city: SampleCity) -> None:
    gk = _grids(sample_city).to_crs(4545)
    shp = _write(gk.set_crs(None, allow_override=True), tmp_path / "grid.shp")
    with pytest.raises(InvalidInputError, match="no CRS"):
        read_layer(shp, "grid")
    assert read_layer(shp, "grid", ReadOptions(source_crs="EPSG:4545")).crs_used == "EPSG:4545"
    lonlat = _write(_grids(sample_city).set_crs(None, allow_override=True), tmp_path / "ll.shp")
    assert "assumed EPSG:4326" in read_layer(lonlat, "grid").crs_note


def test_wrong_encoding_is_refused(tmp_path: Path, sample_city: SampleCity) -> None:
    shp = _write(_grids(sample_city), tmp_path / "grid.shp", "GBK")
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        read_layer(shp, "grid", ReadOptions(encoding="UTF-8"))
    shp = _write(_grids(sample_city), tmp_path / "u.shp", "UTF-8")
    with pytest.raises(InvalidInputError, match="not valid GBK|UTF-8 but was declared GBK"):
        read_layer(shp, "grid", ReadOptions(encoding="GBK"))


def test_bad_files(tmp_path: Path, sample_city: SampleCity) -> None:
    shp = _write(_grids(sample_city), tmp_path / "grid.shp")
    archive = tmp_path / "grid.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in tmp_path.glob("grid.*"):
            if part.suffix != ".zip":
                z.write(part, part.name)
    assert len(read_layer(archive, "grid").frame) == len(_grids(sample_city))
    truncated = tmp_path / "cut.zip"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(InvalidInputError, match="cut.zip"):
        read_layer(truncated, "grid")
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("../../etc/evil.shp", b"x")
    with pytest.raises(InvalidInputError, match="zip slip"):
        read_layer(slip, "grid")
    with pytest.raises(InvalidInputError, match="over the import size limit"):
        read_layer(archive, "grid", ReadOptions(max_bytes=100))
    (tmp_path / "grid.shx").unlink()
    with pytest.raises(InvalidInputError, match=r"grid.shp has no \.shx"):
        read_layer(shp, "grid")


def test_mixed_geometry_and_nan_refused(tmp_path: Path) -> None:
    mixed = gpd.GeoDataFrame({"CODE": ["1", "2"], "NAME": ["a", "b"]},
                             geometry=[shapely.box(0, 0, 1, 1), shapely.Point(0, 0)], crs=4326)
    with pytest.raises(InvalidInputError, match="mixed geometry types"):
        read_layer(_write(mixed, tmp_path / "m.geojson", driver="GeoJSON"), "grid")
    nan = gpd.GeoDataFrame({"CODE": ["1"], "NAME": ["a"]},
                           geometry=[shapely.Polygon([(0, 0), (float("nan"), 1), (1, 0)])],
                           crs=4326)  # fmt: skip
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        read_layer(_write(nan, tmp_path / "n.gpkg", driver="GPKG"), "grid")


@pytest.mark.parametrize("corner", [(179.9, 29.0), (106.0, 85.2), (-180.5, 29.0)])
def test_coordinates_off_the_map_refused(tmp_path: Path, corner: tuple[float, float]) -> None:
    """Past ±180° longitude or Web Mercator's ±85.05° latitude, named by feature."""
    x, y = corner
    frame = gpd.GeoDataFrame(
        {"CODE": ["500103001001001", "500103001001002"], "NAME": ["a", "b"]},
        geometry=[shapely.box(106.0, 29.0, 106.1, 29.1), shapely.box(x, y, x + 0.2, y + 0.1)],
        crs=4326,
    )
    path = _write(frame, tmp_path / "far.gpkg", driver="GPKG")
    with pytest.raises(InvalidInputError, match=r"feature\(s\) \[1\] lie outside") as caught:
        read_layer(path, "grid")
    assert caught.value.details == [{"file": "far.gpkg", "problem": "out_of_range", "feature": 1}]


# --- checks -------------------------------------------------------------------------------


def test_every_check_fires(tmp_path: Path, city_conn: psycopg.Connection,
                           sample_city: SampleCity) -> None:  # fmt: skip
    frame = _grids(sample_city)
    g = frame.geometry.to_numpy().copy()
    # 0: bow-tie (invalid); 1: duplicate code of 2; 3: malformed; 4: not under parent;
    # 5: missing parent; 6: grown (outside parent + overlaps neighbours); last removed (gap);
    # 8: sliver; 9: Z values.
    x0, y0, *_ = g[0].bounds
    g[0] = shapely.Polygon([(x0, y0), (x0 + .01, y0 + .01), (x0 + .01, y0), (x0, y0 + .01)])
    frame.loc[1, "DM"] = frame.DM[2]
    frame.loc[3, "DM"] = "12AB"
    frame.loc[4, "DM"] = "999999999999001"
    frame.loc[5, "SJDM"] = "500199999999"
    g[6] = shapely.buffer(g[6], 0.01)
    c = g[8].centroid
    g[8] = shapely.box(c.x, c.y, c.x + 1e-6, c.y + 1e-6)
    g[9] = shapely.force_3d(g[9], 5.0)
    frame = frame.set_geometry(list(g)).drop(index=frame.index[-1])
    path = _write(frame, tmp_path / "grid.gpkg", driver="GPKG")
    report = import_file(city_conn, path, "grid")
    found = {(f.check, f.index) for f in report.findings}
    for check, index in [("invalid_geometry", 0), ("duplicate_code", 2), ("malformed_code", 3),
                         ("code_not_under_parent", 4), ("missing_parent", 5),
                         ("outside_parent", 6), ("overlap", 6), ("sliver", 8),
                         ("z_m_dropped", 9)]:  # fmt: skip
        assert any(c == check and (i == index or check == "overlap") for c, i in found), check
    unplaced = [f for f in report.findings if f.location is None and f.index != 0]
    assert unplaced == []  # every finding says where (but the bow-tie's)
    gaps = [f for f in report.findings if f.check == "gap"]
    assert gaps and gaps[0].location is not None and gaps[0].area_m2 > 1
    assert report.errors and report.warnings
    text = report.to_text()
    assert "invalid_geometry" in text and "#0" in text
    with pytest.raises(InvalidInputError, match="block --commit"):
        import_file(city_conn, path, "grid", commit=True)
    assert _one(city_conn, "SELECT count(*) FROM generations") == 1
    fixed = import_file(city_conn, path, "grid", thresholds=Thresholds(fix=True))
    invalid = [f for f in fixed.findings if f.check == "invalid_geometry"]
    assert invalid and invalid[0].severity == "warning"


def test_an_empty_file_is_refused_not_published_as_removing_every_area(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    path = _write(_grids(sample_city).iloc[:0], tmp_path / "grid.gpkg", driver="GPKG")
    with pytest.raises(InvalidInputError, match="holds no features"):
        import_file(city_conn, path, "grid", commit=True)
    assert _one(city_conn, "SELECT count(*) FROM generations") == 1
    # The checks by themselves, given no features, refuse them too: every parent is
    # named as uncovered.
    full = read_layer(_write(_grids(sample_city), tmp_path / "all.gpkg", driver="GPKG"), "grid")
    nothing = dataclasses.replace(full, frame=full.frame.iloc[:0], wkb=None)
    report, _ = check_layer(nothing, "grid", load_parents(city_conn, "community", 1))
    assert "no_features" in {f.check for f in report.findings if f.severity == "error"}
    communities = _one(city_conn, "SELECT count(*) FROM areas WHERE level = 'community'")
    assert len({f.code for f in report.findings if f.check == "gap"}) == communities


# --- generations, diff, re-assignment, atomicity --------------------------------------------


def _redivide(city: SampleCity) -> tuple[gpd.GeoDataFrame, str, str, str]:
    """Merge grid B into grid A (same community); rename C; returns (frame, A, B, C)."""
    frame = _grids(city)
    parent = frame.SJDM.iloc[0]
    same = frame.index[frame.SJDM == parent]
    a, b = same[0], same[1]
    assert shapely.touches(frame.geometry[a], frame.geometry[b])
    frame.loc[a, "geometry"] = shapely.union(frame.geometry[a], frame.geometry[b])
    c = frame.index[-1]
    frame.loc[c, "MC"] = "新名字"
    codes = frame.DM[a], frame.DM[b], frame.DM[c]
    return frame.drop(index=b), *codes


def test_commit_diff_generations_and_reassignment(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame, a, b, c = _redivide(sample_city)
    path = _write(frame, tmp_path / "grid.shp", "GBK")
    moved_buildings = _one(city_conn, "SELECT count(*) FROM buildings WHERE grid_code = %s", (b,))
    assert moved_buildings
    city_conn.execute("LISTEN gridmap_generation")
    city_conn.commit()
    report = import_file(city_conn, path, "grid", commit=True)
    d = report.diff
    assert d is not None
    assert (d["added"], d["removed"], d["changed"]) == (0, 1, 2)
    assert d["unchanged"] == len(frame) - 2 and d["removed_codes"] == [b]
    ratios = {x["code"]: x["symmetric_difference_ratio"] for x in d["changed_areas"]}
    assert 0 < ratios[a] < 1 and ratios[c] == 0
    gen = report.generation_id
    assert _one(city_conn, "SELECT id FROM generations WHERE active") == gen
    # unchanged rows keep their identity; removed/changed closed; others carry over
    assert _one(city_conn, "SELECT count(*) FROM areas WHERE generation_high IS NULL AND "
                "generation_low = 1 AND level = 'grid'") == len(frame) - 2  # fmt: skip
    assert _one(city_conn, "SELECT count(*) FROM areas WHERE generation_high = 1") == 3
    assert _one(city_conn, "SELECT count(*) FROM areas WHERE generation_low = %s", (gen,)) == 2
    assert _one(city_conn, "SELECT count(*) FROM areas WHERE level <> 'grid' AND "
                "generation_high IS NOT NULL") == 0  # fmt: skip
    assert _one(city_conn, "SELECT name FROM areas WHERE code = %s AND generation_high IS NULL",
                (c,)) == "新名字"  # fmt: skip
    # the old generation is still there to query
    assert _one(city_conn, "SELECT count(*) FROM areas WHERE code = %s AND generation_low <= 1 "
                "AND (generation_high IS NULL OR generation_high >= 1)", (b,)) == 1  # fmt: skip
    r = report.reassignment
    assert r is not None and r["buildings_moved"] == moved_buildings
    assert r["per_grid"][a]["buildings"] == moved_buildings and r["persons_moved"] > 0
    assert _one(city_conn, "SELECT count(*) FROM buildings WHERE grid_code = %s", (b,)) == 0
    wrong = _one(city_conn, """
        SELECT count(*) FROM buildings bl WHERE grid_code IS DISTINCT FROM (
          SELECT min(code) FROM areas g WHERE level = 'grid' AND generation_high IS NULL
          AND ST_Covers(g.geom, ST_PointOnSurface(bl.geom)))""")
    assert wrong == 0
    assert _one(city_conn, "SELECT count(*) FROM facilities WHERE grid_code = %s", (b,)) == 0
    assert _one(city_conn, "SELECT count(*) FROM worker_assignments WHERE grid_code = %s",
                (b,)) == 0  # fmt: skip
    workers_b = sum(sample_city.workers.grid_code == b)
    assert r["workers_moved"] == workers_b
    notes = list(city_conn.notifies(timeout=1, stop_after=1))
    assert notes and notes[0].payload == str(gen)


def test_the_reassignment_summary_says_what_moved_into_each_grid(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame, a, b, _c = _redivide(sample_city)
    persons = _one(city_conn, "SELECT count(*) FROM persons p JOIN households h ON h.id = "
                   "p.household_id JOIN buildings bl ON bl.id = h.building_id WHERE "
                   "bl.grid_code = %s", (b,))  # fmt: skip
    report = import_file(city_conn, _write(frame, tmp_path / "grid.shp"), "grid", commit=True)
    r = report.reassignment
    assert r is not None and persons and r["per_grid"][a]["persons"] == persons
    assert sum(g.get("persons", 0) for g in r["per_grid"].values()) == r["persons_moved"]
    moved = r["per_grid"][a]
    assert (f"    into {a}: " + ", ".join(f"{n:,} {kind}" for kind, n in moved.items())
            in report.to_text().splitlines())  # fmt: skip


def test_a_worker_whose_grid_is_gone_without_a_successor_is_reported(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _grids(sample_city)
    workers = sample_city.workers
    gone = next(code for code in frame.DM if (workers.grid_code == code).any())
    staff = sorted(workers.code[workers.grid_code == gone])
    path = _write(frame[frame.DM != gone], tmp_path / "grid.shp")
    # the gap it leaves is let through (a raised threshold): no grid covers its area now
    report = import_file(city_conn, path, "grid", commit=True,
                         thresholds=Thresholds(gap_m2=1e12))  # fmt: skip
    r = report.reassignment
    assert r is not None and r["workers_moved"] == 0
    assert r["workers_unplaced"] == [{"worker": w, "grid": gone} for w in staff]
    (warning,) = [f for f in report.findings if f.check == "worker_unplaced"]
    assert warning.severity == "warning" and warning.code == gone
    assert f"{staff[0]} (grid {gone})" in report.to_text()
    assert report.to_dict()["warnings"] == report.warnings >= 1


def test_failure_mid_commit_leaves_active_generation(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame, *_ = _redivide(sample_city)
    path = _write(frame, tmp_path / "grid.shp")
    plan = prepare_import(city_conn, path, "grid")
    city_conn.rollback()

    def boom(fraction: float, message: str) -> None:
        if message == "activating":
            raise RuntimeError("power cut")

    before = city_conn.execute("SELECT id, generation_low, generation_high FROM areas"
                               " ORDER BY id").fetchall()  # fmt: skip
    with pytest.raises(RuntimeError):
        commit_plan(city_conn, plan, progress=boom)
    city_conn.rollback()
    assert _one(city_conn, "SELECT id FROM generations WHERE active") == 1
    assert _one(city_conn, "SELECT count(*) FROM generations") == 1
    after = city_conn.execute("SELECT id, generation_low, generation_high FROM areas"
                              " ORDER BY id").fetchall()  # fmt: skip
    assert after == before


def test_killed_mid_commit_leaves_active_generation(
    tmp_path: Path, city_factory: Callable[[], str], sample_city: SampleCity
) -> None:
    url = city_factory()
    frame, *_ = _redivide(sample_city)
    path = _write(frame, tmp_path / "grid.shp")
    blocker = psycopg.connect(url)
    blocker.execute("SELECT id FROM generations WHERE active FOR UPDATE")  # holds activation
    errors: list[BaseException] = []

    def publish() -> None:
        with psycopg.connect(url, application_name="gm-import-victim") as conn:
            try:
                import_file(conn, path, "grid", commit=True)
            except BaseException as exc:  # noqa: BLE001 - the kill is what we expect
                errors.append(exc)

    worker = threading.Thread(target=publish)
    worker.start()
    with psycopg.connect(url, autocommit=True) as admin:
        for _ in range(200):
            waiting = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'gm-import-victim'"
                " AND wait_event_type = 'Lock'").fetchall()  # fmt: skip
            if waiting:
                break
            time.sleep(0.05)
        assert waiting, "the import never reached activation"
        staged = admin.execute("SELECT count(*) FROM areas").fetchone()
        admin.execute("SELECT pg_terminate_backend(%s)", (waiting[0][0],))
    worker.join(30)
    blocker.rollback()
    blocker.close()
    assert errors
    with psycopg.connect(url) as conn:
        assert _one(conn, "SELECT id FROM generations WHERE active") == 1
        assert _one(conn, "SELECT count(*) FROM generations") == 1
        assert _one(conn, "SELECT count(*) FROM areas WHERE generation_high IS NOT NULL") == 0
        assert (_one(conn, "SELECT count(*) FROM areas"),) == staged


def test_event_intake_neither_waits_for_nor_deadlocks_with_a_publisher(
    tmp_path: Path, city_factory: Callable[[], str], sample_city: SampleCity
) -> None:
    """Storing an event bumps the ``events`` and ``grids`` map layers (its trigger). A
    publisher that held ``grids`` from its first area write made every report wait for
    the whole publish, and deadlocked with one that held ``events`` when re-assignment
    then moved events."""
    url = city_factory()
    frame, *_ = _redivide(sample_city)
    path = _write(frame, tmp_path / "grid.shp")
    waited: list[float] = []

    def an_event_is_stored(fraction: float, message: str) -> None:
        if message != "activating":  # areas written, events about to be moved
            return
        with psycopg.connect(url) as intake:
            intake.execute("SET lock_timeout = '5s'")
            started = time.monotonic()
            intake.execute("SELECT gridmap_invalidate_layers(ARRAY['events', 'grids'], NULL)")
            waited.append(time.monotonic() - started)
            # still uncommitted while the publisher goes on to re-assign events
            intake.execute("SELECT pg_sleep(0.5)")

    with psycopg.connect(url) as conn:
        plan = prepare_import(conn, path, "grid")
        conn.rollback()
        before = dict(conn.execute("SELECT layer, version FROM layer_versions").fetchall())
        conn.rollback()
        report = commit_plan(conn, plan, progress=an_event_is_stored)
        after = dict(conn.execute("SELECT layer, version FROM layer_versions").fetchall())
    assert report.committed and waited and waited[0] < 1.0
    assert all(after[layer] > before[layer] for layer in before), "every layer is stale"


_PIPELINED = "gm-import-pipelined"


def _staged_while_checking(
    url: str, monkeypatch: pytest.MonkeyPatch, then: Callable[[], None] = lambda: None
) -> list[str]:
    """Make the checks start only once the publisher has written the new areas and
    waits, holding the writers' lock, for their verdict; ``then`` runs at that point.
    Returns what was seen (for the test to assert)."""
    real = publish.check_layer
    seen: list[str] = []

    def checking(*args: Any, **kwargs: Any) -> Any:
        with psycopg.connect(url, autocommit=True) as other:
            for _ in range(400):
                waiting = _one(other, "SELECT count(*) FROM pg_stat_activity WHERE "
                               "application_name = %s AND state = 'idle in transaction'",
                               (_PIPELINED,))  # fmt: skip
                locked = _one(other, "SELECT count(*) FROM pg_locks WHERE locktype = "
                              "'advisory' AND objid = %s AND granted",
                              (AREAS_WRITERS,))  # fmt: skip
                if waiting and locked:
                    seen.append("staged before the checks")
                    break
                time.sleep(0.05)
        then()
        return real(*args, **kwargs)

    monkeypatch.setattr(publish, "check_layer", checking)
    return seen


def _state(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    rows = conn.execute("SELECT id, code, generation_low, generation_high FROM areas ORDER BY id"
                        ).fetchall()  # fmt: skip
    rows += conn.execute("SELECT id, active FROM generations ORDER BY id").fetchall()
    conn.rollback()
    return rows


def _lock_free(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as other:
        return not _one(other, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND objid = %s", (AREAS_WRITERS,))  # fmt: skip


def test_areas_written_while_checked_are_rolled_back_on_errors(
    tmp_path: Path, city_factory: Callable[[], str], sample_city: SampleCity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = city_factory()
    frame = _grids(sample_city)
    frame.loc[0, "geometry"] = frame.geometry[0].buffer(0.0005)  # valid, overlapping
    frame.loc[1, "MC"] = "改名网格"  # and a changed area to write
    path = _write(frame, tmp_path / "grid.shp")
    seen = _staged_while_checking(url, monkeypatch)
    with psycopg.connect(url, application_name=_PIPELINED) as conn:
        before = _state(conn)
        with pytest.raises(InvalidInputError, match="block --commit") as refused:
            import_file(conn, path, "grid", commit=True)
        assert seen == ["staged before the checks"]
        assert any(d.get("problem") == "overlap" or "overlap" in str(d)
                   for d in refused.value.details)  # fmt: skip
        assert _state(conn) == before
    assert _lock_free(url)


def test_a_refused_commit_uses_up_no_generation_id(
    tmp_path: Path, city_factory: Callable[[], str], sample_city: SampleCity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer stages the new generation while the checks run; when they refuse the
    file, the next commit still gets the next id (no gap in the generations' history)."""
    url = city_factory()
    frame = _grids(sample_city)
    frame.loc[1, "MC"] = "改名网格"
    bad = frame.copy()
    bad.loc[0, "geometry"] = bad.geometry[0].buffer(0.0005)  # valid, overlapping
    seen = _staged_while_checking(url, monkeypatch)
    with psycopg.connect(url, application_name=_PIPELINED) as conn:
        first = _one(conn, "SELECT max(id) FROM generations")
        for _ in range(2):
            with pytest.raises(InvalidInputError, match="block --commit"):
                import_file(conn, _write(bad, tmp_path / "bad.shp"), "grid", commit=True)
        assert seen == ["staged before the checks"] * 2
        monkeypatch.undo()
        done = import_file(conn, _write(frame, tmp_path / "good.shp"), "grid", commit=True)
        assert done.generation_id == first + 1  # type: ignore[operator]
        assert [r[0] for r in conn.execute("SELECT id FROM generations ORDER BY id")] \
            == list(range(1, first + 2))  # type: ignore[operator]  # fmt: skip


def test_a_failure_while_checking_rolls_back_the_written_areas(
    tmp_path: Path, city_factory: Callable[[], str], sample_city: SampleCity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = city_factory()
    frame, *_ = _redivide(sample_city)
    path = _write(frame, tmp_path / "grid.shp")

    def power_cut() -> None:
        raise RuntimeError("power cut")

    seen = _staged_while_checking(url, monkeypatch, then=power_cut)
    with psycopg.connect(url, application_name=_PIPELINED) as conn:
        before = _state(conn)
        with pytest.raises(RuntimeError, match="power cut"):
            import_file(conn, path, "grid", commit=True)
        assert seen == ["staged before the checks"]
        assert _state(conn) == before
    assert _lock_free(url)


@pytest.fixture
def ctrl_c() -> Iterator[Callable[[], None]]:
    """Press Ctrl-C: SIGINT raises KeyboardInterrupt in the main thread, as in a terminal
    (a process started in the background, as CI may be, ignores SIGINT otherwise)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield _thread.interrupt_main
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_activating_commits_nothing(
    tmp_path: Path, city_factory: Callable[[], str], sample_city: SampleCity,
    monkeypatch: pytest.MonkeyPatch, ctrl_c: Callable[[], None],
) -> None:
    url = city_factory()
    frame, *_ = _redivide(sample_city)
    path = _write(frame, tmp_path / "grid.shp")
    reassign = publish.reassign_after_grid_change

    def slow(*args: Any, **kwargs: Any) -> Any:
        threading.Timer(0.2, ctrl_c).start()
        time.sleep(1.0)
        return reassign(*args, **kwargs)

    monkeypatch.setattr(publish, "reassign_after_grid_change", slow)
    with psycopg.connect(url, application_name=_PIPELINED) as conn:
        before = _state(conn)
        with pytest.raises(KeyboardInterrupt):
            import_file(conn, path, "grid", commit=True)
        assert _state(conn) == before
    assert _lock_free(url)


@pytest.mark.parametrize("file", ["with errors", "clean, then Ctrl-C"])
def test_no_wait_behind_another_publisher_once_the_outcome_is_known(
    tmp_path: Path, city_factory: Callable[[], str], sample_city: SampleCity, file: str,
    ctrl_c: Callable[[], None],
) -> None:
    """Another publisher holds the writers' lock for 6 s. A file whose checks find
    errors reports them at once; a clean file waiting for the lock stops at Ctrl-C."""
    url = city_factory()
    frame, *_ = _redivide(sample_city)
    if file == "with errors":
        frame.loc[frame.index[3], "geometry"] = frame.geometry.iloc[3].buffer(0.0005)
    path = _write(frame, tmp_path / "grid.shp")
    other = psycopg.connect(url)
    lock_areas_writers(other)
    release = threading.Timer(6.0, other.rollback)
    release.start()
    if file != "with errors":
        threading.Timer(1.5, ctrl_c).start()
    started = time.perf_counter()
    try:
        with psycopg.connect(url, application_name=_PIPELINED) as conn:
            before = _state(conn)
            if file == "with errors":
                report = check_and_publish(conn, path, "grid")
                assert report.errors and not report.committed
            else:
                with pytest.raises(KeyboardInterrupt):
                    check_and_publish(conn, path, "grid")
            took = time.perf_counter() - started
            assert _state(conn) == before
    finally:
        release.join()
        other.close()
    assert took < 4.5, f"waited {took:.1f} s for the other publisher"
    assert _lock_free(url)


def test_writing_while_checking_publishes_what_checking_first_does(
    tmp_path: Path, city_factory: Callable[[], str], sample_city: SampleCity
) -> None:
    """The same file committed both ways into two copies of the city: the same report
    and the same rows."""
    frame, *_ = _redivide(sample_city)
    path = _write(frame, tmp_path / "grid.shp", "GBK")
    results = []
    for pipelined in (True, False):
        with psycopg.connect(city_factory()) as conn:
            if pipelined:
                report = import_file(conn, path, "grid", commit=True)
            else:
                plan = prepare_import(conn, path, "grid")
                conn.rollback()
                report = commit_plan(conn, plan)
            rows = conn.execute(
                "SELECT code, level, name, parent_code, generation_low, generation_high, "
                "ST_AsBinary(geom), ST_AsBinary(geom_3857) FROM areas ORDER BY id").fetchall()
            results.append((report.to_dict(), rows))
    assert results[0][1] == results[1][1]
    assert results[0][0]["reassignment"].pop("seconds") >= 0
    assert results[1][0]["reassignment"].pop("seconds") >= 0
    assert results[0][0] == results[1][0]
    assert results[0][0]["committed"] and results[0][0]["diff"]["removed"] == 1


def test_stale_plan_is_refused(tmp_path: Path, city_conn: psycopg.Connection,
                               sample_city: SampleCity) -> None:  # fmt: skip
    frame, *_ = _redivide(sample_city)
    path = _write(frame, tmp_path / "grid.shp")
    plan = prepare_import(city_conn, path, "grid")
    city_conn.rollback()
    import_file(city_conn, path, "grid", commit=True)
    with pytest.raises(ConflictError, match="check it again"):
        commit_plan(city_conn, plan)


# --- export -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "encoding"), [("grid.zip", "GBK"), ("grid.zip", "UTF-8"),
                                                ("grid.gpkg", "UTF-8"),
                                                ("grid.geojson", "UTF-8")])  # fmt: skip
def test_export_round_trip(tmp_path: Path, city_conn: psycopg.Connection, name: str,
                           encoding: str) -> None:  # fmt: skip
    out, rows = export_layer(city_conn, "grid", tmp_path / name, encoding=encoding)
    city_conn.rollback()
    report = import_file(city_conn, out, "grid")
    assert report.errors == 0 and report.diff is not None
    assert report.diff["unchanged"] == rows and report.diff["changed"] == 0
    assert report.encoding == (encoding if name.endswith(".zip") else "UTF-8")


def test_export_filters_and_no_personal_data(tmp_path: Path, city_conn: psycopg.Connection
                                             ) -> None:  # fmt: skip
    _, everything = export_layer(city_conn, "grid", tmp_path / "all.geojson")
    _, some = export_layer(city_conn, "grid", tmp_path / "some.geojson",
                           bbox=(106.2, 29.2, 106.5, 29.5))  # fmt: skip
    assert 0 < some < everything
    with pytest.raises(InvalidInputError, match="personal data"):
        export_layer(city_conn, "worker", tmp_path / "w.geojson")
    _, n = export_layer(city_conn, "building", tmp_path / "b.gpkg")
    columns = set(pyogrio.read_info(tmp_path / "b.gpkg")["fields"])
    assert n and not columns & {"id_number", "phone", "name"}


def test_exported_generation_columns_are_integers_in_every_generation(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame, _a, b, _c = _redivide(sample_city)
    import_file(city_conn, _write(frame, tmp_path / "grid.shp"), "grid", commit=True)
    for generation in (1, None):  # closed rows among open ones; open rows only
        for name in ("grid.gpkg", "grid.zip"):
            out, _rows = export_layer(city_conn, "grid", tmp_path / f"{generation}-{name}",
                                      generation=generation)  # fmt: skip
            info = pyogrio.read_info(out)
            types = dict(zip(info["fields"], info["dtypes"], strict=True))
            assert [types[f] for f in types if f.upper().startswith("GEN")] == ["int64"] * 2
    out, _rows = export_layer(city_conn, "grid", tmp_path / "old.geojson", generation=1)
    features = json.loads(out.read_text())["features"]
    removed = next(f["properties"] for f in features if f["properties"]["code"] == b)
    assert removed["generation_high"] == 1 and type(removed["generation_high"]) is int


def test_export_refuses_what_it_cannot_write_faithfully(
    tmp_path: Path, city_conn: psycopg.Connection
) -> None:
    code = _one(city_conn, "SELECT min(code) FROM areas WHERE level = 'grid'")
    city_conn.execute("UPDATE areas SET name = '㙍𡐓网格' WHERE code = %s", (code,))
    with pytest.raises(InvalidInputError, match=f"code {code}.*𡐓.*UTF-8") as refused:
        export_layer(city_conn, "grid", tmp_path / "gbk.zip", encoding="GBK")
    assert refused.value.details[0]["field"] == "name"
    assert not (tmp_path / "gbk.zip").exists()
    out, _ = export_layer(city_conn, "grid", tmp_path / "utf8.zip", encoding="UTF-8")
    names = set(read_layer(out, "grid").frame.name)
    assert "㙍𡐓网格" in names
    with pytest.raises(InvalidInputError, match="no generations"):
        export_layer(city_conn, "building", tmp_path / "b.gpkg", generation=1)
    with pytest.raises(InvalidInputError, match="does not exist"):
        export_layer(city_conn, "grid", tmp_path / "nowhere" / "g.gpkg")
    with pytest.raises(InvalidInputError, match="four numbers"):
        parse_bbox("1,2,3")
    with pytest.raises(InvalidInputError, match="four numbers"):
        parse_bbox("a,b,c,d")


@pytest.mark.parametrize("encoding", ["UTF-8", "GBK"])
def test_export_refuses_text_a_shapefile_would_truncate(
    tmp_path: Path, city_conn: psycopg.Connection, encoding: str
) -> None:
    code = _one(city_conn, "SELECT min(code) FROM areas WHERE level = 'grid'")
    long_name = "网格" * 79 + "甲"  # 159 characters: 477 bytes in UTF-8, 318 in GBK
    city_conn.execute("UPDATE areas SET name = %s WHERE code = %s", (long_name, code))
    size = len(long_name.encode(encoding))
    with pytest.raises(InvalidInputError, match=rf"\(254 bytes\).*#\d+ \(code {code}\) name is "
                       rf"{size} bytes in {encoding}.*GeoPackage.*GeoJSON") as refused:  # fmt: skip
        export_layer(city_conn, "grid", tmp_path / "g.zip", encoding=encoding)
    assert refused.value.details[0] == {"index": refused.value.details[0]["index"],
                                        "code": code, "field": "name", "bytes": size}
    assert not (tmp_path / "g.zip").exists()
    out, _ = export_layer(city_conn, "grid", tmp_path / "g.gpkg")
    assert long_name in set(read_layer(out, "grid").frame.name)


@pytest.mark.parametrize("crs", [4545, 4523, 3857])
def test_reprojection_noise_is_not_a_change(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity, crs: int
) -> None:
    frame = _grids(sample_city).to_crs(crs)
    moved = frame.index[7]  # one grid really changed: a corner 1 m out
    x, y = shapely.get_coordinates(frame.geometry[moved])[0]
    ring = [(x - 1, y - 1), *shapely.get_coordinates(frame.geometry[moved])[1:-1], (x - 1, y - 1)]
    frame.loc[moved, "geometry"] = shapely.Polygon(ring)
    report = import_file(city_conn, _write(frame, tmp_path / "grid.shp"), "grid")
    assert report.diff is not None
    assert report.diff["changed"] == 1 and report.diff["unchanged"] == len(frame) - 1
    assert report.diff["changed_areas"][0]["code"] == frame.DM[moved]


def test_removing_a_parent_warns_of_the_children_it_leaves(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    streets = sample_city.level("street")[["code", "name", "parent_code", "geometry"]]
    streets = streets.reset_index(drop=True)
    same = streets.index[streets.parent_code == streets.parent_code[0]]
    keep, gone = same[0], same[1]
    merged = shapely.union(streets.geometry[keep], streets.geometry[gone])
    streets.loc[keep, "geometry"] = merged
    children = sorted(sample_city.level("community").query("parent_code == @streets.code[@gone]"
                                                          ).code)  # fmt: skip
    assert children
    report = import_file(city_conn, _write(streets.drop(index=gone), tmp_path / "s.gpkg",
                                           driver="GPKG"), "street")  # fmt: skip
    warned = [f for f in report.findings if f.check == "orphaned_children"]
    assert [(w.code, w.severity) for w in warned] == [(streets.code[gone], "warning")]
    assert f"{len(children):,} active community(s)" in warned[0].message
    assert children[0] in warned[0].message and warned[0].location is not None


def test_a_gap_across_two_parents_is_one_finding_in_each(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _grids(sample_city)
    tree = shapely.STRtree(frame.geometry.to_numpy())
    pairs = tree.query(frame.geometry.to_numpy(), predicate="touches").T
    a, b = next((i, j) for i, j in pairs if frame.SJDM[i] != frame.SJDM[j]
                and shapely.intersection(frame.geometry[i], frame.geometry[j]).length > 0)
    # Both removed, so that the hole crosses the communities' shared edge; a grid far
    # away grown out of its parent, so that the union of the whole layer (not the
    # per-parent sums) finds the hole.
    far = int(np.argmax(shapely.distance(frame.geometry.to_numpy(), frame.geometry[a])))
    frame.loc[far, "geometry"] = shapely.buffer(frame.geometry[far], 0.001)
    report = import_file(city_conn, _write(frame.drop(index=[a, b]), tmp_path / "g.gpkg",
                                           driver="GPKG"), "grid")  # fmt: skip
    assert any(f.check == "outside_parent" for f in report.findings)
    gaps = {f.code: f.area_m2 for f in report.findings if f.check == "gap"}
    assert set(gaps) == {frame.SJDM[a], frame.SJDM[b]}
    areas = m2(frame.geometry[[a, b]].to_numpy())
    assert sorted(gaps.values()) == pytest.approx(sorted(areas), rel=1e-6)


def _siblings_sharing_an_edge(frame: gpd.GeoDataFrame) -> tuple[int, int]:
    geoms = frame.geometry.to_numpy()
    pairs = shapely.STRtree(geoms).query(geoms, predicate="touches").T
    return next((int(i), int(j)) for i, j in pairs if frame.SJDM[i] == frame.SJDM[j]
                and shapely.intersection(geoms[i], geoms[j]).length > 0)  # fmt: skip


@pytest.mark.parametrize("overlap", [False, True])
def test_gaps_and_overlaps_under_their_thresholds_are_noted_per_parent(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity, overlap: bool
) -> None:
    """A 0.25 m² hole in one grid (and a 1 m² box on another's edge, half of it over its
    neighbour): under the 1 m² thresholds, so not errors, but the report says so."""
    frame = _grids(sample_city)
    holed = 10
    inside = frame.geometry[holed].point_on_surface()
    frame.loc[holed, "geometry"] = frame.geometry[holed].difference(
        shapely.box(inside.x, inside.y, inside.x + 5e-6, inside.y + 5e-6))
    grown, neighbour = _siblings_sharing_an_edge(frame)
    if overlap:
        edge = shapely.intersection(frame.geometry[grown], frame.geometry[neighbour])
        mid = edge.interpolate(0.5, normalized=True)
        box = shapely.box(mid.x - 5e-6, mid.y - 5e-6, mid.x + 5e-6, mid.y + 5e-6)
        frame.loc[grown, "geometry"] = frame.geometry[grown].union(box)
    path = _write(frame, tmp_path / "g.gpkg", driver="GPKG")
    report = import_file(city_conn, path, "grid", commit=True)
    assert report.committed and report.errors == 0 and report.warnings == 0, report.to_text()
    notes = {f.check: f for f in report.findings if f.severity == "info"}
    assert set(notes) == ({"gap", "overlap"} if overlap else {"gap"})
    gap = notes["gap"]
    assert gap.code == frame.SJDM[holed] and gap.index is None and gap.location is not None
    assert gap.area_m2 == pytest.approx(0.25, rel=0.1)
    assert gap.message.startswith("1 gap(s) under the 1 m² threshold: 0.2")
    if overlap:
        assert notes["overlap"].code == frame.SJDM[grown]
        assert f"between #{min(grown, neighbour)} and #{max(grown, neighbour)}" \
            in notes["overlap"].message  # fmt: skip
        assert 0.2 < notes["overlap"].area_m2 < 1
    assert report.to_dict()["infos"] == len(notes)
    assert "INFO    gap:" in report.to_text()


def test_reprojection_noise_is_not_noted_as_gaps(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    """Gauss-Kruger and back leaves ~1e-5 m² slivers between grids: not worth a line."""
    path = _write(_grids(sample_city).to_crs(4545), tmp_path / "grid.shp")
    report = import_file(city_conn, path, "grid", thresholds=Thresholds(gap_m2=0.5))
    assert report.findings == [], report.to_text()


def test_without_a_parent_field_parents_come_from_the_codes(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _grids(sample_city).drop(columns="SJDM")
    report = import_file(city_conn, _write(frame, tmp_path / "grid.gpkg", driver="GPKG"), "grid")
    assert report.errors == 0 and report.fields["parent"] == "(the code's prefix)"
    assert report.diff is not None and report.diff["unchanged"] == len(frame)
    assert "parent=(the code's prefix)" in report.to_text()


def _messy(city: SampleCity, path: Path) -> Path:
    """Every grid grown or shrunk by ~30 m: hundreds of overlaps, gaps and overhangs;
    and one blank name (a warning behind them)."""
    frame = _grids(city)
    grow = np.random.default_rng(1).choice([-0.0003, 0.0003], len(frame))
    frame = frame.set_geometry(shapely.buffer(frame.geometry.to_numpy(), grow))
    frame.loc[3, "MC"] = " "
    return _write(frame, path, driver="GPKG")


def test_a_messy_file_reads_summary_first_and_every_kind_of_problem(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    report = import_file(city_conn, _messy(sample_city, tmp_path / "messy.gpkg"), "grid")
    counts = {c: sum(f.check == c for f in report.findings) for c in ("gap", "overlap",
                                                                     "outside_parent")}
    assert min(counts.values()) > 10 and report.warnings == 1
    lines = report.to_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(("  ERROR", "  WARNING")))
    summary = "\n".join(lines[:first])
    assert (f"{report.errors} error(s) ({counts['gap']} gap, {counts['outside_parent']} "
            f"outside_parent, {counts['overlap']} overlap), 1 warning(s) (1 bad_name)") in summary
    assert "diff against generation 1" in summary
    for check, n in counts.items():  # ten of each, then how many more and where
        assert sum(line.startswith(f"  ERROR   {check}:") for line in lines) == 10
        assert f"  … and {n - 10} more {check} error(s) (--json lists every finding)" in lines
    assert any(line.startswith("  WARNING bad_name: #3 ") for line in lines)
    assert len(report.to_dict()["findings"]) == report.errors + 1


def test_a_report_piped_to_a_file_holds_no_progress_bar(
    tmp_path: Path, city_factory: Callable[[], str], sample_city: SampleCity
) -> None:
    """stdout to a file, stderr a terminal: the bar is drawn on stderr and wiped."""
    import os
    import pty
    import subprocess
    import sys

    path = _messy(sample_city, tmp_path / "messy.gpkg")
    env = {**os.environ, "GRIDMAP_DATABASE_URL": city_factory()}
    terminal, stderr = pty.openpty()
    with (tmp_path / "report.txt").open("w") as out:
        done = subprocess.run([sys.executable, "-m", "gridmap", "import", "grid", str(path)],
                              stdout=out, stderr=stderr, env=env, timeout=300)  # fmt: skip
    os.close(stderr)
    drawn = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(terminal)
    text = (tmp_path / "report.txt").read_text()
    assert done.returncode == 2 and "checking" in drawn.decode()
    assert text.startswith("messy.gpkg: 300 grid features\n") and "\x1b" not in text
    assert "\r" not in text and "more overlap error(s)" in text


def test_a_committed_feature_report_names_no_generation() -> None:
    from gridmap.ingest.checks import Report

    report = Report("building", "b.shp", 3, None, "EPSG:4326", "", "UTF-8", {},
                    diff={"inserted": 1, "updated": 0, "unchanged": 2}, committed=True)
    assert report.to_text().endswith("diff: 1 inserted, 0 updated, 2 unchanged\n  committed")


def test_names_and_full_width_codes_are_reported(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _grids(sample_city)
    frame.loc[0, "MC"] = "  "
    frame.loc[1, "MC"] = "第一\n网格"
    frame.loc[2, "DM"] = frame.DM[2].translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    for i in (3, 4, 5):
        frame.loc[i, "geometry"] = shapely.force_3d(frame.geometry[i], 1.0)
    report = import_file(city_conn, _write(frame, tmp_path / "g.gpkg", driver="GPKG"), "grid")
    found = {(f.check, f.index, f.severity) for f in report.findings}
    assert {("bad_name", 0, "warning"), ("bad_name", 1, "warning"),
            ("malformed_code", 2, "error")} <= found  # fmt: skip
    z = [f for f in report.findings if f.check == "z_m_dropped"]
    assert len(z) == 1 and "2 more features" in z[0].message and z[0].location is not None


EXCEL = "looks like a number Excel turned into scientific notation: format the column as text"


def test_codes_excel_wrote_in_scientific_notation_say_so(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    """A code column that went through Excel as a number reads 5.00103E+14."""
    frame = _grids(sample_city)
    frame.loc[0, "DM"] = f"{int(frame.DM[0]):.5E}"  # 5.00103E+14
    frame.loc[1, "SJDM"] = f"{int(frame.SJDM[1]):.5E}"
    frame.loc[2, "DM"] = "500103001001"  # short, but no Excel notation: no hint
    report = import_file(city_conn, _write(frame, tmp_path / "g.gpkg", driver="GPKG"), "grid")
    said = {(f.check, f.index): f.message for f in report.findings}
    assert EXCEL in said[("malformed_code", 0)] and "E+14" in said[("malformed_code", 0)]
    assert EXCEL in said[("missing_parent", 1)]
    assert EXCEL not in said[("malformed_code", 2)]


def test_districts_without_a_parent_field_belong_to_the_only_city(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    districts = sample_city.level("district")[["code", "name", "geometry"]]
    report = import_file(city_conn, _write(districts, tmp_path / "d.gpkg", driver="GPKG"),
                         "district")  # fmt: skip
    city = _one(city_conn, "SELECT code FROM areas WHERE level = 'city'")
    assert report.errors == 0 and report.fields["parent"] == f"(the only city, {city})"
    assert report.diff is not None and report.diff["unchanged"] == len(districts)


def test_reshaping_a_parent_warns_of_the_children_it_leaves_outside(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    communities = sample_city.level("community")[["code", "name", "parent_code", "geometry"]]
    communities = communities.reset_index(drop=True)
    grids = sample_city.level("grid")
    split = communities.code[0]
    taken = grids[grids.parent_code == split].iloc[0]
    communities.loc[0, "geometry"] = shapely.difference(communities.geometry[0], taken.geometry)
    new = {"code": communities.parent_code[0] + "999", "name": "新社区",
           "parent_code": communities.parent_code[0], "geometry": taken.geometry}
    added = gpd.GeoDataFrame([new], geometry="geometry", crs=communities.crs)
    frame = pd.concat([communities, added], ignore_index=True)
    report = import_file(city_conn, _write(frame, tmp_path / "c.gpkg", driver="GPKG"),
                         "community")  # fmt: skip
    assert report.errors == 0, report.to_text()
    warned = [f for f in report.findings if f.check == "children_outside"]
    assert [(w.code, w.severity) for w in warned] == [(split, "warning")]
    assert "1 of its active grid(s)" in warned[0].message and taken.code in warned[0].message


def test_new_grids_are_said_to_have_no_worker_yet(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _grids(sample_city)
    new_code = frame.SJDM[0] + "999"
    frame = _split_first(frame, new_code)
    report = import_file(city_conn, _write(frame, tmp_path / "g.gpkg", driver="GPKG"), "grid")
    warned = [f.message for f in report.findings if f.check == "no_worker"]
    assert len(warned) == 1 and new_code in warned[0] and warned[0].startswith("1 new grid")


def test_a_renumbered_grid_is_not_said_to_lack_the_workers_it_inherits(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _grids(sample_city)
    staffed = set(sample_city.workers.grid_code)
    old = next(i for i in frame.index[1:] if frame.DM[i] in staffed)
    old_code, renumbered = frame.DM[old], frame.SJDM[old] + "998"
    frame.loc[old, "DM"] = renumbered
    split_code = frame.SJDM[0] + "999"
    path = _write(_split_first(frame, split_code), tmp_path / "g.gpkg", driver="GPKG")
    report = import_file(city_conn, path, "grid")
    city_conn.rollback()
    (warned,) = [f.message for f in report.findings if f.check == "no_worker"]
    assert warned.startswith("1 new grid") and split_code in warned and renumbered not in warned
    committed = import_file(city_conn, path, "grid", commit=True)
    assert committed.reassignment is not None
    assert committed.reassignment["per_grid"][renumbered]["workers"] == sum(
        sample_city.workers.grid_code == old_code)


def test_a_ballpark_datum_is_a_crs_warning_in_an_area_report(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    path = _write(_grids(sample_city).to_crs(2383), tmp_path / "grid.shp")  # Xian 1980
    report = import_file(city_conn, path, "grid")
    assert [f.check for f in report.findings if "Xian 1980" in f.message] == ["crs"]
