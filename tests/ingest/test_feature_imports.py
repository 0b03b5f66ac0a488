"""Building, facility and worker imports (checks, grid assignment, upsert by code) and the
reader gaps: missing .dbf, M values, mojibake that decodes without error."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import geopandas as gpd
import pandas as pd
import psycopg
import pyogrio
import pytest
import shapely

from gridmap.errors import InvalidInputError
from gridmap.ingest import features
from gridmap.ingest.checks import Report, Thresholds
from gridmap.ingest.publish import import_file
from gridmap.ingest.reader import ReadOptions, read_layer
from sample_data.city import SampleCity

FAR = shapely.box(100.0, 20.0, 100.001, 20.001)  # far outside the sample city


@pytest.fixture
def city_conn(city_factory: Callable[[], str]) -> Iterator[psycopg.Connection]:
    """A connection to a fresh database holding the sample city (writable)."""
    with psycopg.connect(city_factory()) as conn:
        yield conn


def _rows(conn: psycopg.Connection, query: str, params: tuple = ()) -> list[tuple]:
    return conn.execute(query, params).fetchall()  # type: ignore[call-overload]


def _lookup(conn: psycopg.Connection, point_sql: str, table: str, code: str) -> str | None:
    """The grid by ST_Covers + lowest code, computed by PostGIS (the reference)."""
    rows = _rows(conn, f"SELECT a.code FROM {table} t JOIN areas a ON a.level = 'grid' AND "
                 f"a.generation_high IS NULL AND ST_Covers(a.geom, {point_sql}) "
                 "WHERE t.code = %s ORDER BY a.code LIMIT 1", (code,))  # fmt: skip
    return rows[0][0] if rows else None


def _gdf(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    geoms = list(frame["geometry"])
    plain = pd.DataFrame(frame.drop(columns="geometry"))
    return gpd.GeoDataFrame(plain, geometry=gpd.GeoSeries(geoms, index=plain.index), crs=4326)


def _checks(report: object) -> set[tuple[str, int | None]]:
    return {(f.check, f.index) for f in report.findings}  # type: ignore[attr-defined]


# --- buildings -----------------------------------------------------------------------------


def _buildings(city: SampleCity, n: int = 30) -> gpd.GeoDataFrame:
    frame = city.buildings.iloc[:n][["code", "address", "floors", "use", "geometry"]]
    frame = frame.reset_index(drop=True).rename(columns={"code": "BM", "address": "地址",
                                                         "floors": "FLOORS", "use": "USE"})
    return _gdf(frame)


def test_building_import_checks_then_upserts(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _buildings(sample_city)
    new_geom = shapely.affinity.translate(frame.geometry[1], 1e-5, 1e-5)
    frame.loc[0, "地址"] = "新地址 1 号"
    extra = pd.DataFrame({"BM": ["NEW-1", frame.BM[2], "FAR-1", "TWO-1"],
                          "地址": ["新楼", "重复", "远处", "两块"], "FLOORS": [7, 1, 1, 1],
                          "USE": ["office", "residential", "residential", "residential"],
                          "geometry": [new_geom, new_geom, FAR, shapely.MultiPolygon(
                              [shapely.box(106.5, 29.5, 106.5001, 29.5001),
                               shapely.box(106.6, 29.6, 106.6001, 29.6001)])]})  # fmt: skip
    bad = _gdf(pd.concat([frame, extra], ignore_index=True))
    path = tmp_path / "buildings.shp"
    pyogrio.write_dataframe(bad, path, encoding="GBK")
    report = import_file(city_conn, path, "building")
    found = _checks(report)
    n = len(frame)
    assert {("duplicate_code", n + 1), ("outside_grid", n + 2), ("wrong_geometry", n + 3)} <= found
    assert report.fields["address"] == "地址" and report.encoding == "GBK"
    before = _rows(city_conn, "SELECT count(*) FROM buildings")[0][0]
    with pytest.raises(InvalidInputError, match="block --commit"):
        import_file(city_conn, path, "building", commit=True)
    city_conn.rollback()
    assert _rows(city_conn, "SELECT count(*) FROM buildings")[0][0] == before

    good = _gdf(pd.concat([frame, extra.iloc[:1]], ignore_index=True))
    pyogrio.write_dataframe(good, path, encoding="GBK")
    households = _rows(city_conn, "SELECT count(*) FROM households")[0][0]
    dry = import_file(city_conn, path, "building")
    versions = "SELECT code, xmin::text FROM buildings WHERE code = ANY(%s) ORDER BY code"
    stored = dict(_rows(city_conn, versions, (frame.BM.tolist(),)))
    done = import_file(city_conn, path, "building", commit=True)
    # feature 0's address changed; the others are as stored (rings wound the other way)
    diff = {"inserted": 1, "updated": 1, "unchanged": n - 1, "kept_not_in_file": before - n}
    assert done.committed and done.diff == diff and dry.diff == diff
    assert f"diff: 1 inserted, 1 updated, {n - 1} unchanged" in done.to_text()
    rewritten = {c for c, v in _rows(city_conn, versions, (frame.BM.tolist(),)) if stored[c] != v}
    assert rewritten == {frame.BM[0]}  # unchanged rows are left as they are
    assert _rows(city_conn, "SELECT count(*) FROM buildings")[0][0] == before + 1
    row = _rows(city_conn, "SELECT address, floors, use, grid_code FROM buildings"
                " WHERE code = 'NEW-1'")[0]  # fmt: skip
    assert row[:3] == ("新楼", 7, "office")
    assert row[3] is not None
    assert row[3] == _lookup(city_conn, "ST_PointOnSurface(t.geom)", "buildings", "NEW-1")
    assert _rows(city_conn, "SELECT address FROM buildings WHERE code = %s",
                 (frame.BM[0],))[0][0] == "新地址 1 号"  # fmt: skip
    assert _rows(city_conn, "SELECT count(*) FROM households")[0][0] == households


# --- facilities ----------------------------------------------------------------------------


def _facilities(city: SampleCity, n: int = 20) -> gpd.GeoDataFrame:
    frame = city.facilities.iloc[:n][["code", "name", "state", "geometry"]]
    return _gdf(frame.reset_index(drop=True))


def test_facility_import_validates_codes_and_assigns_grids(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _facilities(sample_city)
    code = frame.code[0]
    inside = frame.geometry[1]
    crafted = pd.DataFrame({
        "code": ["12345", code[:6] + "0901" + "000001", "999999" + code[6:],
                 code[:10] + "999998", code[:10] + "999999", code[:10] + "999997"],
        "name": ["短码", "无此类", "无此区", "远处", "坏状态", "新井盖"],
        "state": ["intact", "intact", "intact", "intact", "broken", "damaged"],
        "geometry": [inside, inside, inside, FAR.centroid, inside, inside],
    })  # fmt: skip
    n = len(frame)
    bad = _gdf(pd.concat([frame, crafted], ignore_index=True))
    path = tmp_path / "facilities.gpkg"
    pyogrio.write_dataframe(bad, path, driver="GPKG")
    report = import_file(city_conn, path, "facility")
    assert {("malformed_code", n), ("unknown_class", n + 1), ("unknown_area", n + 2),
            ("outside_grid", n + 3), ("bad_value", n + 4)} <= _checks(report)  # fmt: skip
    assert report.errors == 5
    with pytest.raises(InvalidInputError, match="block --commit"):
        import_file(city_conn, path, "facility", commit=True)
    city_conn.rollback()

    good = _gdf(pd.concat([frame, crafted.iloc[5:]], ignore_index=True))
    pyogrio.write_dataframe(good, path, driver="GPKG")
    done = import_file(city_conn, path, "facility", commit=True)
    assert done.diff is not None
    assert (done.diff["inserted"], done.diff["updated"], done.diff["unchanged"]) == (1, 0, n)
    new = code[:10] + "999997"
    row = _rows(city_conn, "SELECT major_code, minor_code, state, grid_code,"
                " owner_department_code FROM facilities WHERE code = %s", (new,))[0]  # fmt: skip
    assert row[:3] == (code[6:8], code[8:10], "damaged")
    assert row[3] == _lookup(city_conn, "t.geom", "facilities", new) and row[3] is not None
    assert row[4] is not None


# --- workers -------------------------------------------------------------------------------


def test_worker_import_from_gbk_csv(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    grids = sample_city.level("grid").code.tolist()
    csv = tmp_path / "workers.csv"
    lines = ["工号,name,电话,岗位,网格代码",
             f"W-NEW-1,张三,13800000000,网格长,{grids[0]};{grids[1]}",
             f"W-NEW-2,李四,,兼职,{grids[2]}",
             f"W-NEW-2,王五,,专职,{grids[3]}",
             f"W-NEW-3,赵六,,司机,{grids[3]}",
             "W-NEW-4,钱七,,专职,500199999999999"]  # fmt: skip
    csv.write_bytes("\n".join(lines).encode("gbk"))
    report = import_file(city_conn, csv, "worker", options=ReadOptions(code_field="工号"))
    assert report.encoding == "GBK"
    assert {("duplicate_code", 2), ("bad_value", 3), ("unknown_grid", 4)} <= _checks(report)
    csv.write_bytes("\n".join(lines[:3]).encode("gbk"))
    done = import_file(city_conn, csv, "worker", commit=True,
                       options=ReadOptions(code_field="工号"))  # fmt: skip
    assert done.diff is not None
    assert (done.diff["inserted"], done.diff["updated"], done.diff["unchanged"]) == (2, 0, 0)
    rows = _rows(city_conn, "SELECT w.code, w.name, w.role, array_agg(a.grid_code ORDER BY"
                 " a.grid_code) FROM workers w JOIN worker_assignments a ON a.worker_id = w.id"
                 " WHERE w.code LIKE 'W-NEW-%%' GROUP BY 1, 2, 3 ORDER BY 1")  # fmt: skip
    assert rows == [("W-NEW-1", "张三", "grid_leader", sorted(grids[:2])),
                    ("W-NEW-2", "李四", "part_time", [grids[2]])]  # fmt: skip
    csv.write_bytes("\n".join([lines[0], f"W-NEW-2,李四,,专职,{grids[4]}"]).encode("gbk"))
    again = import_file(city_conn, csv, "worker", commit=True,
                        options=ReadOptions(code_field="工号"))  # fmt: skip
    assert again.diff is not None
    assert (again.diff["inserted"], again.diff["updated"], again.diff["unchanged"]) == (0, 1, 0)
    # the same worker in another grid only is an update; as stored, unchanged
    csv.write_bytes("\n".join([lines[0], f"W-NEW-2,李四,,专职,{grids[5]}",
                               f"W-NEW-1,张三,13800000000,网格长,{grids[0]};{grids[1]}"]
                              ).encode("gbk"))  # fmt: skip
    third = import_file(city_conn, csv, "worker", options=ReadOptions(code_field="工号"))
    assert third.diff is not None
    assert (third.diff["inserted"], third.diff["updated"], third.diff["unchanged"]) == (0, 1, 1)
    assert _rows(city_conn, "SELECT a.grid_code, w.role FROM workers w JOIN worker_assignments"
                 " a ON a.worker_id = w.id WHERE w.code = 'W-NEW-2'") == [(grids[4], "full_time")]


# --- reader gaps ---------------------------------------------------------------------------


def _grid_file(city: SampleCity, path: Path, encoding: str = "UTF-8") -> Path:
    frame = city.level("grid")[["code", "name", "parent_code", "geometry"]].reset_index(drop=True)
    pyogrio.write_dataframe(frame, path, encoding=encoding)
    return path


def test_missing_dbf_is_refused(tmp_path: Path, sample_city: SampleCity) -> None:
    shp = _grid_file(sample_city, tmp_path / "grid.shp")
    (tmp_path / "grid.dbf").unlink()
    with pytest.raises(InvalidInputError, match=r"grid.shp has no \.dbf") as info:
        read_layer(shp, "grid")
    assert info.value.details[0]["missing"] == [".dbf"]


def test_m_values_are_dropped_and_reported(tmp_path: Path, city_conn: psycopg.Connection,
                                           sample_city: SampleCity) -> None:  # fmt: skip
    grid = sample_city.level("grid").iloc[0]
    ring = shapely.get_coordinates(shapely.get_exterior_ring(shapely.get_parts(grid.geometry)[0]))
    points = ", ".join(f"{float(x)!r} {float(y)!r} {k}" for k, (x, y) in enumerate(ring))
    wkt = f"POLYGON M (({points}))"
    csv = tmp_path / "m.csv"
    csv.write_text(f'WKT,CODE,NAME,PARENT\n"{wkt}",{grid.code},{grid["name"]},'
                   f"{grid.parent_code}\n")  # fmt: skip
    gpkg = tmp_path / "m.gpkg"
    subprocess.run(["ogr2ogr", "-f", "GPKG", str(gpkg), str(csv), "-a_srs", "EPSG:4326",
                    "-nlt", "POLYGONM", "-oo", "GEOM_POSSIBLE_NAMES=WKT"], check=True)  # fmt: skip
    read = read_layer(gpkg, "grid")
    assert read.m_dropped == [0] and read.z_dropped == []
    assert not shapely.has_m(read.frame.geometry[0])
    report = import_file(city_conn, gpkg, "grid")
    assert any(f.check == "z_m_dropped" and f.message == "M values dropped"
               for f in report.findings)  # fmt: skip


@pytest.mark.parametrize("how", ["cpg", "option"])
def test_mojibake_that_decodes_is_refused(tmp_path: Path, city_conn: psycopg.Connection,
                                          sample_city: SampleCity, how: str) -> None:  # fmt: skip
    shp = _grid_file(sample_city, tmp_path / "grid.shp", "GBK")
    (tmp_path / "grid.cpg").write_text("ISO-8859-1" if how == "cpg" else "GBK")
    wrong = ReadOptions(encoding="latin1" if how == "option" else None)
    with pytest.raises(InvalidInputError, match=r"grid.shp: .* look like mojibake .*#0.*"
                                                r"--encoding GBK") as refused:  # fmt: skip
        read_layer(shp, "grid", wrong)
    assert refused.value.details[0]["field"] == "name"
    with pytest.raises(InvalidInputError, match="mojibake"):
        import_file(city_conn, shp, "grid", commit=True, options=wrong)
    assert _rows(city_conn, "SELECT count(*) FROM generations")[0][0] == 1
    right = read_layer(shp, "grid", ReadOptions(encoding="GBK"))
    assert right.warnings == [] and right.frame.name[0] == sample_city.level("grid").name.iloc[0]


# --- unreadable worker tables ---------------------------------------------------------------


@pytest.mark.parametrize(("content", "expected"), [
    (b"code,name,phone,role,grid_code\nW1,a,1,full_time,500103001003001\n"
     b"W2,b,2,full_time,500103001003001,500103001003002\n",
     r"workers.csv: line 3 has 6 fields, the header has 5"),
    (b"", r"workers.csv: the file is empty"),
    (b"\n\n", r"workers.csv: the file is empty"),
    (b"code,name,phone,role,grid_code\n", r"workers.csv: holds no rows"),
])  # fmt: skip
def test_unreadable_worker_csv_is_a_clear_error(
    tmp_path: Path, city_conn: psycopg.Connection, content: bytes, expected: str
) -> None:
    csv = tmp_path / "workers.csv"
    csv.write_bytes(content)
    with pytest.raises(InvalidInputError, match=expected):
        import_file(city_conn, csv, "worker")


def test_worker_folder_is_not_called_missing(tmp_path: Path, city_conn: psycopg.Connection) -> None:
    with pytest.raises(InvalidInputError, match=rf"{tmp_path.name}: is a folder; give the worker "
                       "table itself"):  # fmt: skip
        import_file(city_conn, tmp_path, "worker")


def test_worker_layer_is_found_in_a_geopackage(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    grids = sample_city.level("grid")[["code", "name", "geometry"]].reset_index(drop=True)
    gpkg = tmp_path / "city.gpkg"
    pyogrio.write_dataframe(grids, gpkg, layer="grid")
    workers = gpd.GeoDataFrame(
        {"code": ["W-G-1", "W-G-2"], "name": ["张三", "李四"], "role": ["网格长", "专职"],
         "grid_code": grids.code.iloc[:2].tolist()},
        geometry=grids.geometry.iloc[:2].centroid.tolist(), crs=4326,
    )  # fmt: skip
    pyogrio.write_dataframe(workers, gpkg, layer="workers")
    report = import_file(city_conn, gpkg, "worker")
    assert report.feature_count == 2 and report.errors == 0, report.to_text()


def test_worker_grid_codes_stored_as_numbers(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    """A DBF numeric field gives 500103001001001.0: the code is 500103001001001."""
    grids = sample_city.level("grid").code.iloc[:2].tolist()
    workers = gpd.GeoDataFrame(
        {"code": ["W-N-1", "W-N-2"], "name": ["张三", "李四"], "role": ["专职", "兼职"],
         "grid_code": [float(g) for g in grids], "phone": [13800000000.0, None]},
        geometry=[shapely.Point(106.5, 29.5)] * 2, crs=4326,
    )  # fmt: skip
    path = tmp_path / "workers.shp"
    pyogrio.write_dataframe(workers, path)
    report = import_file(city_conn, path, "worker", commit=True)
    assert report.errors == 0, report.to_text()
    assert _rows(city_conn, "SELECT w.code, w.phone, a.grid_code FROM workers w JOIN "
                 "worker_assignments a ON a.worker_id = w.id WHERE w.code LIKE 'W-N-%%' "
                 "ORDER BY 1") == [("W-N-1", "13800000000", grids[0]),
                                   ("W-N-2", None, grids[1])]  # fmt: skip


EXCEL = "looks like a number Excel turned into scientific notation: format the column as text"


@pytest.mark.parametrize("table", ["workers.csv", "workers.xlsx", "workers.ods"])
def test_worker_grid_codes_excel_wrote_in_scientific_notation_say_so(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity, table: str
) -> None:
    """A grid-code column saved by Excel from a number cell: 5.00103E+14."""
    grid = sample_city.level("grid").code.iloc[0]
    mangled = f"{int(grid):.5E}"
    rows = pd.DataFrame({"code": ["W-E-1", "W-E-2"], "name": ["张三", "李四"],
                         "role": ["专职", "专职"], "grid_code": [mangled, "500103999999999"]})
    path = tmp_path / table
    if table.endswith(".csv"):
        rows.to_csv(path, index=False)
    else:  # every cell text: the header row is still found
        pyogrio.write_dataframe(gpd.GeoDataFrame(rows), path, driver=path.suffix[1:].upper())
    report = import_file(city_conn, path, "worker")
    said = {f.index: f.message for f in report.findings if f.check == "unknown_grid"}
    assert mangled in said[0] and EXCEL in said[0], report.to_text()
    assert EXCEL not in said[1]  # an unknown code, but not Excel's doing


def test_facility_code_excel_wrote_in_scientific_notation_says_so(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _facilities(sample_city, 2)
    frame.loc[0, "code"] = f"{int(frame.code[0]):.5E}"
    path = tmp_path / "facilities.gpkg"
    pyogrio.write_dataframe(frame, path, driver="GPKG")
    report = import_file(city_conn, path, "facility")
    said = [f.message for f in report.findings if (f.check, f.index) == ("malformed_code", 0)]
    assert len(said) == 1 and EXCEL in said[0]


# --- missing values ------------------------------------------------------------------------


def test_empty_required_worker_fields_are_errors_not_commit_failures(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    grid = sample_city.level("grid").code.iloc[0]
    csv = tmp_path / "workers.csv"
    csv.write_text("code,name,phone,role,grid_code\n"
                   f"WTEST001,,13800000000,full_time,{grid}\n"
                   f"WTEST002,  ,,part_time,{grid}\n"
                   f"WTEST003,王五,,,{grid}\n"
                   "WTEST004,赵六,,专职,\n"
                   f"WTEST005,钱七,,专职,{grid}\n", encoding="utf-8")  # fmt: skip
    report = import_file(city_conn, csv, "worker")
    missing = {(f.index, f.message) for f in report.findings if f.check == "missing_value"}
    assert missing == {(0, "name is empty (field 'name')"), (1, "name is empty (field 'name')"),
                       (2, "role is empty (field 'role')"),
                       (3, "grids is empty (field 'grid_code')")}  # fmt: skip
    assert report.errors == 4, report.to_text()
    before = _rows(city_conn, "SELECT count(*) FROM workers")
    with pytest.raises(InvalidInputError, match="block --commit"):
        import_file(city_conn, csv, "worker", commit=True)
    city_conn.rollback()
    assert _rows(city_conn, "SELECT count(*) FROM workers") == before


def _bare_report(frame: pd.DataFrame, level: str) -> Report:
    return Report(level=level, source="test", feature_count=len(frame), bounds=None, crs="",
                  crs_note="", encoding="", fields={c: c for c in frame.columns})  # fmt: skip


def test_nan_values_are_missing_in_every_feature_check(
    city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    """NaN, not None, is what pandas puts in an empty cell of a text column."""
    nan = float("nan")
    facilities = _facilities(sample_city, 3)
    frame = pd.DataFrame({"code": [nan, facilities.code[1], "  "],
                          "name": [nan, "井盖", nan], "state": [nan, nan, "intact"],
                          "geometry": facilities.geometry.tolist()})  # fmt: skip
    grids = features._active_grids(city_conn)
    report = _bare_report(frame, "facility")
    features._check_frame(city_conn, frame, "facility", grids, report)
    assert {(f.check, f.index) for f in report.findings if f.severity == "error"} == \
        {("malformed_code", 0), ("malformed_code", 2)}  # fmt: skip
    assert frame.state.tolist() == ["intact"] * 3 and frame.name.tolist() == ["", "井盖", ""]
    workers = pd.DataFrame({"code": ["W1", "W2"], "name": [nan, "李四"], "phone": [nan, nan],
                            "role": ["专职", nan], "grids": [nan, "  "]})  # fmt: skip
    report = _bare_report(workers, "worker")
    features._check_frame(city_conn, workers, "worker", grids, report)
    assert {(f.check, f.index, f.message.split(" is ")[0]) for f in report.findings} == {
        ("missing_value", 0, "name"), ("missing_value", 0, "grids"),
        ("missing_value", 1, "role"), ("missing_value", 1, "grids")}  # fmt: skip


def test_facility_states_in_chinese_are_accepted(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    names = ["完好", "损坏", "破损", "丢失", "移除", "拆除", "damaged"]
    frame = _facilities(sample_city, len(names)).assign(state=names)
    path = tmp_path / "facilities.gpkg"
    pyogrio.write_dataframe(frame, path, driver="GPKG")
    done = import_file(city_conn, path, "facility", commit=True)
    assert done.errors == 0, done.to_text()
    stored = dict(_rows(city_conn, "SELECT code, state FROM facilities WHERE code = ANY(%s)",
                        (frame.code.tolist(),)))  # fmt: skip
    assert [stored[c] for c in frame.code] == ["intact", "damaged", "damaged", "lost", "removed",
                                               "removed", "damaged"]  # fmt: skip
    frame.loc[0, "state"] = "坏了"
    pyogrio.write_dataframe(frame, path, driver="GPKG")
    report = import_file(city_conn, path, "facility")
    assert [(f.check, f.index) for f in report.findings if f.severity == "error"] == \
        [("bad_value", 0)]  # fmt: skip
    assert "完好, 损坏/破损, 丢失, 移除/拆除" in report.findings[0].message


def test_fix_repairs_a_building_into_one_polygon_or_says_it_cannot(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _buildings(sample_city, n=3)
    x0, y0, x1, y1 = frame.geometry[0].bounds
    xm = (x0 + x1) / 2
    # a spike out of the top edge (repairs to the rectangle); a bow-tie (two triangles)
    frame.loc[0, "geometry"] = shapely.Polygon([(x0, y0), (x1, y0), (x1, y1), (xm, y1),
                                                (xm, y1 + 1e-4), (xm, y1), (x0, y1)])
    frame.loc[1, "geometry"] = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
    path = tmp_path / "buildings.gpkg"
    pyogrio.write_dataframe(_gdf(frame), path, driver="GPKG")
    plain = import_file(city_conn, path, "building")
    assert {(f.check, f.index, f.severity) for f in plain.findings} >= {
        ("invalid_geometry", 0, "error"), ("invalid_geometry", 1, "error")}
    fixed = import_file(city_conn, path, "building", thresholds=Thresholds(fix=True))
    found = {(f.index, f.severity) for f in fixed.findings if f.check == "invalid_geometry"}
    assert found == {(0, "warning"), (1, "error")}
    assert "does not give one polygon" in str([f.message for f in fixed.findings])


# --- audit 2 -------------------------------------------------------------------------------


@pytest.mark.parametrize("separator", ["、", "；", ";", ",", " "])
def test_worker_grids_may_be_separated_by_an_enumeration_comma(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity, separator: str
) -> None:
    grids = sample_city.level("grid").code.iloc[:2].tolist()
    csv = tmp_path / "workers.csv"
    csv.write_text(f'code,name,role,grids\nW-SEP-1,张三,专职,"{separator.join(grids)}"\n',
                   encoding="utf-8")  # fmt: skip
    done = import_file(city_conn, csv, "worker", commit=True)
    assert done.errors == 0, done.to_text()
    assert _rows(city_conn, "SELECT a.grid_code FROM workers w JOIN worker_assignments a ON "
                 "a.worker_id = w.id WHERE w.code = 'W-SEP-1' ORDER BY 1") == [
                     (g,) for g in sorted(grids)]  # fmt: skip


def test_full_width_digits_are_not_digits(
    city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    """'５' passes str.isdigit() and \\d, but no column or code takes it."""
    full_width = str.maketrans("0123456789", "０１２３４５６７８９")
    facilities = _facilities(sample_city, 2)
    frame = pd.DataFrame({"code": [facilities.code[0].translate(full_width), facilities.code[1]],
                          "name": ["井盖", "井盖"], "state": ["intact", "intact"],
                          "geometry": facilities.geometry.tolist()})  # fmt: skip
    grids = features._active_grids(city_conn)
    report = _bare_report(frame, "facility")
    features._check_frame(city_conn, frame, "facility", grids, report)
    assert [(f.check, f.index) for f in report.findings if f.severity == "error"] == \
        [("malformed_code", 0)]  # fmt: skip
    buildings = _buildings(sample_city, 2).rename(columns={"BM": "code", "地址": "address",
                                                           "FLOORS": "floors", "USE": "use"})
    buildings["floors"] = ["５", "5"]
    report = _bare_report(buildings, "building")
    features._check_frame(city_conn, buildings, "building", grids, report)
    assert [(f.check, f.index) for f in report.findings if f.severity == "error"] == \
        [("bad_value", 0)]  # fmt: skip


def test_text_longer_than_its_column_is_a_finding_not_a_database_error(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _buildings(sample_city, 3)
    frame.loc[1, "USE"] = "residential and commercial mixed use"  # 36 > 32
    frame.loc[2, "BM"] = "B" * 33
    path = tmp_path / "buildings.gpkg"
    pyogrio.write_dataframe(frame, path, driver="GPKG")
    report = import_file(city_conn, path, "building")
    errors = {(f.check, f.index): f.message for f in report.findings if f.severity == "error"}
    assert set(errors) == {("too_long", 1), ("malformed_code", 2)}, report.to_text()
    assert errors[("too_long", 1)] == "use is 36 characters, longer than the 32 its column " \
        "holds (field 'USE')"  # fmt: skip
    assert "longer than 32" in errors[("malformed_code", 2)]
    grid = sample_city.level("grid").code.iloc[0]
    csv = tmp_path / "workers.csv"
    csv.write_text(f"code,name,phone,role,grid_code\nWX1,张三,13800000000;13900000000,full_time,"
                   f"{grid}\nWX2,李四,13800000000,full_time,{grid}\n", encoding="utf-8")
    report = import_file(city_conn, csv, "worker")
    assert [(f.check, f.index, f.message) for f in report.findings] == [
        ("too_long", 0, "phone is 23 characters, longer than the 20 its column holds "
         "(field 'phone')")]  # fmt: skip


def test_text_limits_come_from_the_models() -> None:
    assert features.text_limits("worker") == {"code": 32, "phone": 20, "role": 16}
    assert features.text_limits("building")["use"] == 32
    assert "name" not in features.text_limits("facility")  # TEXT: no limit


def test_every_feature_finding_has_a_location(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    frame = _buildings(sample_city, 3)
    frame.loc[0, "FLOORS"] = -1
    x0, y0, x1, y1 = frame.geometry[1].bounds
    frame.loc[1, "geometry"] = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
    path = tmp_path / "buildings.gpkg"
    pyogrio.write_dataframe(frame, path, driver="GPKG")
    report = import_file(city_conn, path, "building")
    located = {(f.check, f.index): f.location for f in report.findings}
    inside = shapely.point_on_surface(frame.geometry[0])
    assert located[("bad_value", 0)] == pytest.approx((inside.x, inside.y))
    assert located[("invalid_geometry", 1)] == pytest.approx((x0, y0))  # a vertex: not valid
    facilities = _facilities(sample_city, 2).assign(state=["intact", "坏了"])
    path = tmp_path / "facilities.gpkg"
    pyogrio.write_dataframe(facilities, path, driver="GPKG")
    report = import_file(city_conn, path, "facility")
    point = facilities.geometry[1]
    assert [(f.check, f.location) for f in report.findings] == [("bad_value", (point.x, point.y))]


@pytest.mark.parametrize("delivery", ["buildings.geojson", "buildings_4545.gpkg",
                                      "facilities.geojson"])  # fmt: skip
def test_a_round_trip_within_a_tenth_of_a_millimetre_is_not_a_change(
    tmp_path: Path, city_conn: psycopg.Connection, delivery: str
) -> None:
    """GeoJSON writes 15 significant digits and a re-projection adds ~1e-14° of noise:
    neither is an update (nor rewritten at commit); a vertex moved 1e-6° (~0.1 m) is."""
    from gridmap.ingest.export import export_layer, read_export_frame

    level = "facility" if delivery.startswith("facilities") else "building"
    path = tmp_path / delivery
    if delivery.endswith(".geojson"):
        export_layer(city_conn, level, path)
        exported = gpd.read_file(path)
    else:
        exported = read_export_frame(city_conn, level).to_crs(4545)
    moved = exported.geometry[3]
    exported.loc[3, "geometry"] = shapely.affinity.translate(
        moved, *((1e-6, 0) if delivery.endswith(".geojson") else (0.1, 0)))
    pyogrio.write_dataframe(exported, path, driver="GPKG" if path.suffix == ".gpkg" else None)
    table = features.TABLES[level]
    versions = dict(_rows(city_conn, f"SELECT code, xmin::text FROM {table}"))
    city_conn.rollback()
    dry = import_file(city_conn, path, level)
    assert dry.errors == 0, dry.to_text()
    expected = {"inserted": 0, "updated": 1, "unchanged": len(exported) - 1,
                "kept_not_in_file": 0}  # fmt: skip
    assert dry.diff == expected
    done = import_file(city_conn, path, level, commit=True)
    assert done.diff == expected
    rewritten = {c for c, v in _rows(city_conn, f"SELECT code, xmin::text FROM {table}")
                 if versions[c] != v}  # fmt: skip
    assert rewritten == {exported.code[3]}


def test_utf8_worker_csv_declared_gbk_is_refused(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    grid = sample_city.level("grid").code.iloc[0]
    csv = tmp_path / "workers.csv"
    csv.write_text(f"code,name,role,grid_code\nW-U-1,王五,专职,{grid}\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"workers.csv: text in workers.csv is UTF-8 but "
                       r"was declared GBK.*--encoding UTF-8"):  # fmt: skip
        import_file(city_conn, csv, "worker", options=ReadOptions(encoding="gbk"))
    for encoding in ("UTF-8", "utf-8-sig", "utf8"):
        report = import_file(city_conn, csv, "worker", options=ReadOptions(encoding=encoding))
        assert report.errors == 0, report.to_text()
    csv.write_bytes(f"code,name,role,grid_code\nW-G-1,王五,专职,{grid}\n".encode("gbk"))
    report = import_file(city_conn, csv, "worker", options=ReadOptions(encoding="GBK"))
    assert report.errors == 0 and report.encoding == "GBK"


def test_an_old_datum_is_a_crs_warning_in_the_report(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    path = tmp_path / "buildings.shp"
    pyogrio.write_dataframe(_buildings(sample_city, 3).to_crs(2383), path)
    report = import_file(city_conn, path, "building")
    assert [(f.severity, f.check) for f in report.findings] == [("warning", "crs")]
    assert "Xian 1980" in report.findings[0].message


def test_worker_table_from_excel_with_numbers_and_chinese_headers(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity
) -> None:
    """HR sends an .xlsx: 工号/姓名/手机/职务/网格代码, phones and grid codes typed as numbers."""
    grids = sample_city.level("grid").code.tolist()
    table = pd.DataFrame({"工号": ["W-X-1", "W-X-2"], "姓名": ["张三", "李四"],
                          "手机": [13800000000, 13900000000], "职务": ["网格长", "专职"],
                          "网格代码": [int(grids[0]), int(grids[1])]})  # fmt: skip
    xlsx = tmp_path / "workers.xlsx"
    pyogrio.write_dataframe(gpd.GeoDataFrame(table), xlsx, driver="XLSX")
    done = import_file(city_conn, xlsx, "worker", commit=True)
    assert done.errors == 0 and done.fields["code"] == "工号", done.to_text()
    rows = _rows(city_conn, "SELECT w.code, w.name, w.phone, w.role, a.grid_code FROM workers w"
                 " JOIN worker_assignments a ON a.worker_id = w.id WHERE w.code LIKE 'W-X-%%'"
                 " ORDER BY 1")  # fmt: skip
    assert rows == [("W-X-1", "张三", "13800000000", "grid_leader", grids[0]),
                    ("W-X-2", "李四", "13900000000", "full_time", grids[1])]  # fmt: skip


@pytest.mark.parametrize(("encoding", "cpg"), [("GBK", None), ("UTF-8", None), ("GBK", "GBK"),
                                               ("UTF-8", "UTF-8")])  # fmt: skip
def test_worker_dbf_in_gbk_or_utf8_with_or_without_cpg(
    tmp_path: Path, city_conn: psycopg.Connection, sample_city: SampleCity, encoding: str,
    cpg: str | None,
) -> None:
    grids = sample_city.level("grid").code.tolist()
    table = pd.DataFrame({"code": ["W-D-1"], "name": ["网格员甲"], "role": ["专职"],
                          "grids": [grids[0]]})  # fmt: skip
    dbf = tmp_path / "workers.dbf"
    pyogrio.write_dataframe(gpd.GeoDataFrame(table), dbf, driver="ESRI Shapefile",
                            encoding=encoding)  # fmt: skip
    for extra in tmp_path.glob("workers.cpg"):
        extra.unlink()
    if cpg:
        (tmp_path / "workers.cpg").write_text(cpg)
    report = import_file(city_conn, dbf, "worker", commit=True)
    assert report.errors == 0 and report.encoding == encoding, report.to_text()
    assert _rows(city_conn, "SELECT name FROM workers WHERE code = 'W-D-1'") == [("网格员甲",)]
