"""Imports over a generation that passed the checks re-check only around the changes.

Each crafted error sits in a changed grid among unchanged ones; the report must equal
the one a full check makes of the same file (every finding, in order)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyogrio
import pytest
import shapely
from click.testing import Result
from typer.testing import CliRunner

from gridmap.ingest.checks import PARENT_LEVEL, Report, check_layer
from gridmap.ingest.compare import load_parents
from gridmap.ingest.jobs import get_job, list_jobs
from gridmap.ingest.publish import Plan, import_file, prepare_import
from gridmap.ingest.reader import read_layer
from sample_data.city import SampleCity


@pytest.fixture
def city_conn(city_factory: Callable[[], str]) -> Iterator[psycopg.Connection]:
    """A fresh copy of the sample city, as ``gridmap sample`` loads it (never checked)."""
    with psycopg.connect(city_factory()) as conn:
        yield conn


@pytest.fixture
def checked_conn(
    city_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> psycopg.Connection:
    """The sample city with its grids published once through the checked import."""
    report = import_file(city_conn, _write(_grids(sample_city), tmp_path / "g0.shp"), "grid",
                         commit=True)  # fmt: skip
    assert report.coverage["scope"] == "full" and report.errors == 0
    assert _checked_levels(city_conn) == ["grid"]
    return city_conn


def test_committing_an_unchanged_file_makes_no_generation(
    city_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> None:
    """The active generation already holds the file: it stays active (no identical
    generation for every API process to rebuild its lookup index for) and records what
    the checks proved."""
    path = _write(_grids(sample_city), tmp_path / "same.shp")
    for _ in range(2):  # the first commit marks the level checked; the second only agrees
        report = import_file(city_conn, path, "grid", commit=True)
        assert report.committed and report.unchanged and report.generation_id == 1
        assert "nothing changed, generation 1 stays active" in report.to_text()
        assert _checked_levels(city_conn) == ["grid"]
        generations = city_conn.execute("SELECT array_agg(id) FROM generations").fetchone()
        assert generations == ([1],)


def _grids(city: SampleCity) -> gpd.GeoDataFrame:
    frame = city.level("grid")[["code", "name", "parent_code", "geometry"]].reset_index(drop=True)
    return frame.rename(columns={"code": "CODE", "name": "NAME", "parent_code": "PARENT"})


def _communities(city: SampleCity) -> gpd.GeoDataFrame:
    frame = city.level("community")[["code", "name", "parent_code", "geometry"]]
    return frame.reset_index(drop=True).rename(
        columns={"code": "CODE", "name": "NAME", "parent_code": "PARENT"})


def _write(frame: gpd.GeoDataFrame, path: Path) -> Path:
    pyogrio.write_dataframe(frame, path, encoding="UTF-8")
    return path


def _checked_levels(conn: psycopg.Connection) -> list[str]:
    row = conn.execute("SELECT checked_levels FROM generations WHERE active").fetchone()
    conn.rollback()
    assert row is not None
    return list(row[0])


def _full_report(conn: psycopg.Connection, path: Path) -> Report:
    """What the checks say when nothing is taken as checked (GEOS on every grid)."""
    read = read_layer(path, "grid")
    generation = conn.execute("SELECT id FROM generations WHERE active").fetchone()
    assert generation is not None
    parents = load_parents(conn, PARENT_LEVEL["grid"], generation[0])
    conn.rollback()
    report, _frame = check_layer(read, "grid", parents, exact_tiling=False)
    return report


def _prepared_and_full(
    conn: psycopg.Connection, frame: gpd.GeoDataFrame, tmp_path: Path
) -> tuple[Report, Report]:
    """The report an import prepares of ``frame`` and the full check's of the same file."""
    path = _write(frame.reset_index(drop=True), tmp_path / "grid.shp")
    plan = prepare_import(conn, path, "grid")
    conn.rollback()
    assert isinstance(plan, Plan)
    return plan.report, _full_report(conn, path)


def _restricted_equals_full(conn: psycopg.Connection, path: Path) -> Report:
    plan = prepare_import(conn, path, "grid")
    conn.rollback()
    assert isinstance(plan, Plan)
    report = plan.report
    assert report.coverage["scope"] == "changed"
    full = _full_report(conn, path)
    assert full.coverage["scope"] == "full"
    assert [asdict(f) for f in report.findings] == [asdict(f) for f in full.findings]
    assert (report.coverage["clean"], report.coverage["inside_parents"]) == (
        full.coverage["clean"], full.coverage["inside_parents"])
    assert report.coverage["features_checked"] < full.feature_count / 2
    return report


def _interior_grid(frame: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, grow: float) -> int:
    """A grid that stays inside its community when grown by ``grow`` degrees."""
    parent = dict(zip(communities.CODE, communities.geometry, strict=True))
    for i, row in frame.iterrows():
        if parent[row.PARENT].covers(row.geometry.buffer(grow)):
            return int(i)  # type: ignore[call-overload]
    raise AssertionError("no interior grid")


def _edge_grid(frame: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, grow: float) -> int:
    """A grid that leaves its community when grown by ``grow`` degrees."""
    parent = dict(zip(communities.CODE, communities.geometry, strict=True))
    for i, row in frame.iterrows():
        if not parent[row.PARENT].covers(row.geometry.buffer(grow)):
            return int(i)  # type: ignore[call-overload]
    raise AssertionError("no edge grid")


def _grow_interior(frame: gpd.GeoDataFrame, communities: gpd.GeoDataFrame) -> int:
    """A grid grown over its siblings, inside its community; returns its index."""
    i = _interior_grid(frame, communities, 0.002)
    frame.loc[i, "geometry"] = frame.geometry[i].buffer(0.002, join_style="mitre")
    return i


def _grow_across(frame: gpd.GeoDataFrame, communities: gpd.GeoDataFrame) -> int:
    """A grid grown out of its community; returns its index."""
    i = _edge_grid(frame, communities, 0.002)
    frame.loc[i, "geometry"] = frame.geometry[i].buffer(0.002, join_style="mitre")
    return i


def _shrink(frame: gpd.GeoDataFrame, communities: gpd.GeoDataFrame) -> int:
    """A grid shrunk, leaving a gap; returns its index."""
    i = _interior_grid(frame, communities, 0.0)
    frame.loc[i, "geometry"] = frame.geometry[i].buffer(-0.002, join_style="mitre")
    return i


def _nudge(frame: gpd.GeoDataFrame, communities: gpd.GeoDataFrame) -> int:
    """A grid with a vertex moved by millimetres; returns its index."""
    i = _interior_grid(frame, communities, 0.0)
    frame.loc[i, "geometry"] = _nudge_vertex(frame.geometry[i])
    return i


def _reparent(frame: gpd.GeoDataFrame, communities: gpd.GeoDataFrame) -> int:
    """A grid named under a sibling community of the same street (code kept valid)."""
    i = _interior_grid(frame, communities, 0.0)
    street = frame.PARENT[i][:9]
    other = next(c for c in communities.CODE if c.startswith(street) and c != frame.PARENT[i])
    frame.loc[i, "PARENT"] = other
    frame.loc[i, "CODE"] = other + frame.CODE[i][12:]
    return i


def _drop(frame: gpd.GeoDataFrame, communities: gpd.GeoDataFrame) -> int:
    """A grid left out of the file; returns its index."""
    i = _interior_grid(frame, communities, 0.0)
    frame.drop(index=i, inplace=True)
    return i


def test_overlap_in_a_changed_grid_is_found(
    checked_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> None:
    frame = _grids(sample_city)
    i = _grow_interior(frame, _communities(sample_city))
    report = _restricted_equals_full(checked_conn, _write(frame, tmp_path / "grid.shp"))
    overlaps = [f for f in report.findings if f.check == "overlap"]
    assert overlaps and all(f.severity == "error" for f in overlaps)
    assert any(f.index == i or f"#{i} " in f.message for f in overlaps)
    assert not any(f.check == "outside_parent" for f in report.findings)
    assert report.diff is not None and report.diff["changed"] == 1


def test_changed_grid_swallowing_an_unchanged_neighbour_is_found(
    checked_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> None:
    """The grown grid's own edges are all fine; only its unchanged neighbour's are not."""
    frame = _grids(sample_city)
    i = _interior_grid(frame, _communities(sample_city), 0.0)
    j = next(int(k) for k in frame.index[frame.PARENT == frame.PARENT[i]]
             if k != i and frame.geometry[k].touches(frame.geometry[i]))  # fmt: skip
    frame.loc[i, "geometry"] = shapely.union(frame.geometry[i], frame.geometry[j])
    report = _restricted_equals_full(checked_conn, _write(frame, tmp_path / "grid.shp"))
    overlaps = [f for f in report.findings if f.check == "overlap"]
    assert {f.index for f in overlaps} <= {i, j} and overlaps
    assert overlaps[0].area_m2 == pytest.approx(float(frame.to_crs(4547).geometry[j].area),
                                                rel=0.03)  # m2() is approximate  # fmt: skip


def test_gap_left_by_a_changed_grid_is_found(
    checked_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> None:
    frame = _grids(sample_city)
    i = _shrink(frame, _communities(sample_city))
    report = _restricted_equals_full(checked_conn, _write(frame, tmp_path / "grid.shp"))
    gaps = [f for f in report.findings if f.check == "gap"]
    assert gaps and gaps[0].code == frame.PARENT[i] and gaps[0].area_m2 > 1


def _nudge_vertex(geom: shapely.Geometry) -> shapely.Polygon:
    """The polygon with one vertex moved outwards by a few millimetres."""
    polygon = shapely.get_parts(geom)[0]
    ring = list(polygon.exterior.coords)
    x, y = ring[1]
    centre = polygon.centroid
    ring[1] = (x + (x - centre.x) * 1e-8, y + (y - centre.y) * 1e-8)
    return shapely.Polygon(ring)


def test_gap_in_an_unclean_coverage_is_found(
    checked_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> None:
    """Not a clean coverage any more (a vertex nudged): gaps are cut around the changes
    instead of by parent areas, and still equal the full check's."""
    frame = _grids(sample_city)
    communities = _communities(sample_city)
    i = _interior_grid(frame, communities, 0.0)
    j = next(int(k) for k in frame.index if frame.PARENT[k] != frame.PARENT[i])
    frame.loc[i, "geometry"] = frame.geometry[i].buffer(-0.002, join_style="mitre")
    frame.loc[j, "geometry"] = _nudge_vertex(frame.geometry[j])
    report = _restricted_equals_full(checked_conn, _write(frame, tmp_path / "grid.shp"))
    assert report.coverage["clean"] is False
    gaps = [f for f in report.findings if f.check == "gap"]
    assert [g.code for g in gaps] == [frame.PARENT[i]] and gaps[0].area_m2 > 1


def test_changed_grid_leaving_its_community_is_found(
    checked_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> None:
    frame = _grids(sample_city)
    i = _grow_across(frame, _communities(sample_city))
    report = _restricted_equals_full(checked_conn, _write(frame, tmp_path / "grid.shp"))
    outside = [f for f in report.findings if f.check == "outside_parent"]
    assert [f.index for f in outside] == [i]
    assert any(f.check == "overlap" for f in report.findings)


def test_unchanged_file_over_a_checked_generation_checks_nothing_twice(
    checked_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> None:
    path = _write(_grids(sample_city), tmp_path / "grid.shp")
    report = import_file(checked_conn, path, "grid", commit=True)
    assert report.coverage == {"clean": True, "inside_parents": True, "gap_free": True,
                               "scope": "changed", "features_checked": 0, "tiled": 0}  # fmt: skip
    assert "passed them when published" in report.to_text()
    assert _checked_levels(checked_conn) == ["grid"]


def test_rewound_multipolygons_are_the_same_areas(
    checked_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> None:
    """The published grids as GeoJSON: rings counter-clockwise, each a one-part
    MultiPolygon. Byte for byte they differ from the stored copies; as areas they are
    the same, so nothing is checked again — except the one grid whose corner moved."""
    frame = _grids(sample_city)
    parts = shapely.get_parts(frame.geometry.to_numpy())
    assert len(parts) == len(frame)
    moved = shapely.get_coordinates(parts[7])
    moved[0] = moved[-1] = moved[0] + 1e-7
    parts[7] = shapely.Polygon(moved)
    wound = shapely.orient_polygons(parts, exterior_cw=False)
    frame["geometry"] = [shapely.MultiPolygon([g]) for g in wound]
    path = tmp_path / "grid.geojson"
    pyogrio.write_dataframe(frame, path, driver="GeoJSON")
    plan = prepare_import(checked_conn, path, "grid")
    assert isinstance(plan, Plan)
    assert plan.report.coverage["scope"] == "changed"
    assert plan.report.coverage["features_checked"] + plan.report.coverage["tiled"] <= 40
    assert {k: plan.report.diff[k] for k in ("added", "removed", "changed", "unchanged")} == {
        "added": 0, "removed": 0, "changed": 1, "unchanged": len(frame) - 1}
    assert plan.report.diff["changed_areas"][0]["code"] == frame.CODE[7]


def test_unmarked_generation_gets_the_full_check(
    city_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> None:
    frame = _grids(sample_city)
    _grow_interior(frame, _communities(sample_city))
    assert _checked_levels(city_conn) == []  # loaded by load_city, as gridmap sample does
    report = import_file(city_conn, _write(frame, tmp_path / "grid.shp"), "grid")
    assert report.coverage["scope"] == "full"
    # Every grid is checked: by exact tiling where its community is tiled, else by GEOS.
    assert 0 < report.coverage["features_checked"] < len(frame) / 2
    assert report.coverage["tiled"] + report.coverage["features_checked"] >= len(frame)
    assert any(f.check == "overlap" for f in report.findings)


def test_layer_with_an_unclean_coverage_is_not_marked(
    checked_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> None:
    """A vertex moved by a few millimetres: an overlap under the threshold (a warning-free commit)
    but no longer a clean coverage, so the next import checks everything again."""
    frame = _grids(sample_city)
    i = _interior_grid(frame, _communities(sample_city), 0.002)
    frame.loc[i, "geometry"] = _nudge_vertex(frame.geometry[i])
    report = import_file(checked_conn, _write(frame, tmp_path / "grid.shp"), "grid", commit=True)
    assert report.committed and report.coverage["clean"] is False
    assert _checked_levels(checked_conn) == []
    again = import_file(checked_conn, _write(frame, tmp_path / "again.shp"), "grid")
    assert again.coverage["scope"] == "full"


def test_new_communities_drop_the_grid_mark(
    checked_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path
) -> None:
    communities = _communities(sample_city)
    same = import_file(checked_conn, _write(communities, tmp_path / "c0.shp"), "community",
                       commit=True)  # fmt: skip
    assert same.committed and same.diff is not None and same.diff["unchanged"] == len(communities)
    assert _checked_levels(checked_conn) == ["community", "grid"]  # grids' parents unchanged
    communities.loc[0, "NAME"] = "新社区"
    renamed = import_file(checked_conn, _write(communities, tmp_path / "c1.shp"), "community",
                          commit=True)  # fmt: skip
    assert renamed.committed
    assert _checked_levels(checked_conn) == ["community"]
    report = import_file(checked_conn, _write(_grids(sample_city), tmp_path / "g.shp"), "grid")
    assert report.coverage["scope"] == "full"


def _cli_import_grids(url: str, city: SampleCity, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch, *options: str) -> Result:  # fmt: skip
    """``gridmap import grid`` of the city's own grids, against the database at ``url``."""
    from gridmap.cli import app
    from gridmap.config import get_settings

    monkeypatch.setenv("GRIDMAP_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        path = _write(_grids(city), tmp_path / "grid.shp")
        return CliRunner().invoke(app, ["import", "grid", str(path), *options])
    finally:
        get_settings.cache_clear()


def test_cli_commit_checks_once_and_reports_json(
    city_factory: Callable[[], str], sample_city: SampleCity, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = city_factory()
    result = _cli_import_grids(url, sample_city, tmp_path, monkeypatch, "--commit", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["committed"] and report["coverage"]["scope"] == "full"
    assert report["diff"]["unchanged"] == len(sample_city.level("grid"))
    with psycopg.connect(url) as conn:
        assert _checked_levels(conn) == ["grid"]
        recorded = get_job(conn, report.pop("import_id"))
        listed = list_jobs(conn, status="committed")
    assert recorded["status"] == "committed" and recorded["filename"] == "grid.shp"
    assert recorded["report"] == report, "the publish's whole report, as printed"
    assert recorded["message"] == ("from the command line: nothing changed: generation "
                                   f"{report['generation_id']} stays active")  # fmt: skip
    assert [job["id"] for job in listed] == [recorded["id"]]


def test_cli_dry_runs_are_not_recorded(
    city_factory: Callable[[], str], sample_city: SampleCity, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = city_factory()
    result = _cli_import_grids(url, sample_city, tmp_path, monkeypatch)
    assert result.exit_code == 0 and "recorded as import" not in result.stdout, result.output
    with psycopg.connect(url) as conn:
        assert list_jobs(conn) == []


@pytest.mark.parametrize("damage", [_grow_interior, _grow_across, _shrink, _nudge, _reparent,
                                    _drop], ids=lambda f: f.__name__.strip("_"))  # fmt: skip
def test_exact_tiling_finds_what_geos_finds(
    city_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path,
    damage: Callable[[gpd.GeoDataFrame, gpd.GeoDataFrame], int],
) -> None:
    """Over an unmarked generation: communities their grids tile exactly skip GEOS; the
    findings, and whether the layer is clean and inside its parents, are a full GEOS
    check's."""
    frame = _grids(sample_city)
    damage(frame, _communities(sample_city))
    report, full = _prepared_and_full(city_conn, frame, tmp_path)
    assert report.coverage["scope"] == "full"
    assert report.coverage["tiled"] > len(frame) * 0.8
    assert report.coverage["features_checked"] < len(frame) / 2
    assert [asdict(f) for f in report.findings] == [asdict(f) for f in full.findings]
    assert report.findings or not report.coverage["clean"]  # the damage is seen
    for key in ("clean", "inside_parents", "gap_free"):
        assert report.coverage[key] == full.coverage[key], key


def _random_damage(frame: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """The grids with one of grow, shrink, shift, nudge, drop or copy done to a random one."""
    i = int(rng.choice(frame.index))
    kind = rng.integers(6)
    size = float(rng.choice([1e-7, 1e-4, 2e-3]))
    geom = frame.geometry[i]
    if kind == 4:
        return frame.drop(index=i)
    if kind == 5:
        copy = frame.loc[[i]].set_axis([frame.index.max() + 1])
        return pd.concat([frame, copy])
    frame = frame.copy()
    if kind == 0:
        frame.loc[i, "geometry"] = geom.buffer(size, join_style="mitre")
    elif kind == 1:
        shrunk = geom.buffer(-size, join_style="mitre")
        frame.loc[i, "geometry"] = shrunk if not shrunk.is_empty else geom
    elif kind == 2:
        frame.loc[i, "geometry"] = shapely.affinity.translate(geom, size, -size)
    else:
        frame.loc[i, "geometry"] = _nudge_vertex(geom)
    return frame


def _comparable(report: Report) -> list[tuple[object, ...]]:
    """Findings with areas and places rounded: gaps cut by other unions differ in the
    last bits."""
    return [(f.severity, f.check, f.message, f.index, f.code,
             None if f.location is None else tuple(round(v, 9) for v in f.location),
             None if f.area_m2 is None else round(f.area_m2, 4)) for f in report.findings]


@pytest.mark.parametrize("seed", range(12))
def test_exact_tiling_equals_geos_under_random_damage(
    city_conn: psycopg.Connection, sample_city: SampleCity, tmp_path: Path, seed: int
) -> None:
    """Three random kinds of damage at random places at once: same findings and flags."""
    rng = np.random.default_rng(seed)
    frame = _grids(sample_city)
    for _ in range(3):
        frame = _random_damage(frame, rng)
    report, full = _prepared_and_full(city_conn, frame, tmp_path)
    assert _comparable(report) == _comparable(full)
    for key in ("clean", "inside_parents", "gap_free"):
        assert report.coverage[key] == full.coverage[key], key
