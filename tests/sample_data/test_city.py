"""The synthetic city generator: determinism, structure, geometry, people, files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from gridmap.catalog import CATEGORIES
from gridmap.models import CARE_TAGS, WORKER_ROLES
from sample_data._divisions import _make_contiguous
from sample_data._names import DISTRICTS
from sample_data.city import (
    AREA_LEVELS,
    REFERENCE_DATE,
    SampleCity,
    generate_city,
    level_counts,
    read_files,
    reading_order,
    write_files,
)

GRIDS = 300
SEED = 7
CODE_LENGTH = {"city": 6, "district": 6, "street": 9, "community": 12, "grid": 15}
PARENT_LEVEL = {
    "district": "city",
    "street": "district",
    "community": "street",
    "grid": "community",
}
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


@pytest.fixture(scope="module")
def city() -> SampleCity:
    return generate_city(grids=GRIDS, seed=SEED)


def _geoms(frame: pd.DataFrame) -> np.ndarray:
    return frame.geometry.to_numpy()


# --- determinism and counts -------------------------------------------------------------


def test_same_seed_same_city(city: SampleCity) -> None:
    again = generate_city(grids=GRIDS, seed=SEED)
    for table in ("areas", "buildings", "facilities"):
        a, b = getattr(city, table), getattr(again, table)
        assert a.code.tolist() == b.code.tolist()
        assert shapely.to_wkb(_geoms(a)).tolist() == shapely.to_wkb(_geoms(b)).tolist()
    for table in ("households", "persons", "workers"):
        pd.testing.assert_frame_equal(getattr(city, table), getattr(again, table))


def test_other_seed_other_city(city: SampleCity) -> None:
    other = generate_city(grids=GRIDS, seed=SEED + 1)
    assert not shapely.equals(_geoms(city.level("grid"))[0], _geoms(other.level("grid"))[0])


def test_level_counts_follow_chongqing() -> None:
    assert level_counts(65000) == {
        "district": 38, "street": 1031, "community": 11000, "grid": 65000
    }  # fmt: skip
    assert level_counts(6500) == {"district": 4, "street": 103, "community": 1100, "grid": 6500}
    assert level_counts(1) == {"district": 1, "street": 1, "community": 1, "grid": 1}
    with pytest.raises(ValueError):
        level_counts(0)


def test_counts_and_every_parent_has_children(city: SampleCity) -> None:
    counts = city.counts()
    assert {lv: counts[lv] for lv in ("district", "street", "community", "grid")} == level_counts(
        GRIDS
    )
    assert counts["city"] == 1
    for level, parent in PARENT_LEVEL.items():
        children = city.level(level)
        assert set(children.parent_code) == set(city.level(parent).code)
    assert 2.5 < counts["buildings"] / GRIDS < 3.5
    assert 4.0 < counts["persons"] / counts["buildings"] < 6.0


def test_tiny_city() -> None:
    tiny = generate_city(grids=3, seed=1)
    assert tiny.counts()["grid"] == 3
    assert tiny.level("district").code.tolist() == ["500103"]


# --- codes and names --------------------------------------------------------------------


def test_code_formats_and_prefixes(city: SampleCity) -> None:
    areas = city.areas
    assert areas.code.is_unique
    for level, length in CODE_LENGTH.items():
        codes = city.level(level).code
        assert codes.str.fullmatch(rf"[0-9]{{{length}}}").all(), level
    assert city.level("city").code.tolist() == ["500000"]
    below_district = areas[areas.level.isin(["street", "community", "grid"])]
    assert all(
        c[:-3] == p for c, p in zip(below_district.code, below_district.parent_code, strict=True)
    )
    assert all(c[-3:] != "000" for c in below_district.code)


def test_districts_have_real_codes_and_names(city: SampleCity) -> None:
    generated = generate_city(grids=6500 * 2, seed=3).level("district")
    assert len(generated) == 8
    for frame in (city.level("district"), generated):
        assert all(
            DISTRICTS[code] == name for code, name in zip(frame.code, frame.name, strict=True)
        )
    assert "500103" in set(generated.code)  # 渝中区 comes first


def test_names_are_plausible_and_unique_among_siblings(city: SampleCity) -> None:
    assert city.level("street").name.str.fullmatch(r"\w{2}(街道|镇)").all()
    assert city.level("community").name.str.fullmatch(r"\w{2}(社区|村)").all()
    grids = city.level("grid")
    assert (grids.name == "第" + grids.code.str[-3:].str.lstrip("0") + "网格").all()
    for level in ("street", "community"):
        frame = city.level(level)
        assert not frame.duplicated(["parent_code", "name"]).any()


def test_reading_order_on_a_lattice() -> None:
    xs, ys = np.meshgrid([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])  # north row first
    points = np.column_stack([xs.ravel(), ys.ravel()])
    shuffled = np.random.default_rng(0).permutation(9)
    seq = reading_order(
        points[shuffled], np.zeros(9, dtype=np.int64), np.array([[0.5, 0.5, 3.5, 3.5]])
    )
    assert seq.tolist() == (shuffled + 1).tolist()


def test_sequence_numbers_run_in_reading_order(city: SampleCity) -> None:
    for level in ("street", "community", "grid"):
        children = city.level(level)
        parents = city.level(PARENT_LEVEL[level]).set_index("code")
        index = {code: i for i, code in enumerate(parents.index)}
        parent = children.parent_code.map(index).to_numpy()
        points = shapely.get_coordinates(shapely.point_on_surface(_geoms(children)))
        seq = reading_order(points, parent, shapely.bounds(parents.geometry.to_numpy()))
        assert seq.tolist() == children.code.str[-3:].astype(int).tolist(), level
        # Independent of the banding: numbers grow from north to south.
        bounds = shapely.bounds(parents.geometry.to_numpy())[parent]
        north_to_south = (bounds[:, 3] - points[:, 1]) / (bounds[:, 3] - bounds[:, 1])
        k = np.bincount(parent)[parent]
        many = k >= 3
        position = (seq[many] - 1) / (k[many] - 1)
        assert np.corrcoef(position, north_to_south[many])[0, 1] > 0.4, level


# --- geometry -----------------------------------------------------------------------------


def test_geometries_valid_and_multipolygons(city: SampleCity) -> None:
    assert shapely.is_valid(_geoms(city.areas)).all()
    assert (city.areas.geom_type == "MultiPolygon").all()
    assert (city.buildings.geom_type == "Polygon").all()
    assert shapely.is_valid(_geoms(city.buildings)).all()
    assert (city.facilities.geom_type == "Point").all()
    assert city.areas.crs.to_epsg() == city.buildings.crs.to_epsg() == 4326
    minx, miny, maxx, maxy = city.areas.total_bounds
    assert 106.2 - 1e-9 <= minx and maxx <= 107.0 + 1e-9
    assert 29.2 - 1e-9 <= miny and maxy <= 29.9 + 1e-9


def test_every_area_is_one_piece(city: SampleCity) -> None:
    assert (shapely.get_num_geometries(_geoms(city.areas)) == 1).all()


def test_stray_pieces_do_not_swap_forever() -> None:
    """Regression (65,000 grids, seed 1): two stray neighbours swapped groups endlessly."""
    # Groups 0, 1, 2 seeded at nodes 0, 1, 4; nodes 2 (group 0) and 3 (group 1) are cut
    # off from their seeds and touch each other and group 2.
    labels = np.array([0, 1, 0, 1, 2])
    a = np.array([0, 1, 2, 2, 3])
    b = np.array([4, 4, 3, 4, 4])
    fixed = _make_contiguous(labels, np.array([0, 1, 4]), (a, b))
    assert fixed.tolist() == [0, 1, 2, 2, 2]


@pytest.mark.parametrize("level", ["district", "street", "community", "grid"])
def test_no_overlaps_within_a_level(city: SampleCity, level: str) -> None:
    geoms = _geoms(city.level(level))
    i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pair = i < j
    overlap = shapely.area(shapely.intersection(geoms[i[pair]], geoms[j[pair]]))
    assert overlap.sum() < 1e-12  # degree² (~1e-2 m²): shared edges only


def test_every_level_covers_the_same_city(city: SampleCity) -> None:
    cityshape = _geoms(city.level("city"))[0]
    for level in ("district", "street", "community", "grid"):
        union = shapely.union_all(_geoms(city.level(level)))
        assert shapely.area(shapely.symmetric_difference(union, cityshape)) < 1e-12, level


def test_every_child_inside_its_parent(city: SampleCity) -> None:
    by_code = city.areas.set_index("code").geometry
    children = city.areas[city.areas.level != "city"]
    parents = by_code.loc[children.parent_code].to_numpy()
    assert shapely.covers(parents, _geoms(children)).all()
    leftover = shapely.area(shapely.difference(_geoms(children), parents))
    assert leftover.max() < 1e-14


def test_buildings_strictly_inside_their_grid_and_apart(city: SampleCity) -> None:
    grids = city.level("grid").set_index("code").geometry
    buildings = _geoms(city.buildings)
    assert shapely.contains_properly(
        grids.loc[city.buildings.grid_code].to_numpy(), buildings
    ).all()
    assert set(city.buildings.grid_code) == set(grids.index)
    i, j = shapely.STRtree(buildings).query(buildings, predicate="intersects")
    assert (i == j).all()
    assert city.buildings.code.is_unique
    assert (city.buildings.code.str[:15] == city.buildings.grid_code).all()
    assert set(city.buildings.use) <= {"residential", "commercial", "public", "industrial"}
    # Footprints are 10–40 m: roughly 1e-4 to 4e-4 degrees across.
    extent = np.ptp(shapely.get_coordinates(buildings[:50]).reshape(50, 5, 2), axis=1).max(axis=1)
    assert (extent > 5e-5).all() and (extent < 6e-4).all()


def test_facilities_inside_their_grid_with_valid_codes(city: SampleCity) -> None:
    fac = city.facilities
    grids = city.level("grid").set_index("code").geometry
    assert shapely.contains(grids.loc[fac.grid_code].to_numpy(), _geoms(fac)).all()
    assert fac.code.str.fullmatch(r"[0-9]{16}").all() and fac.code.is_unique
    assert (fac.code.str[:6] == fac.grid_code.str[:6]).all()
    assert (fac.code.str[6:8] == fac.major_code).all() and (
        fac.code.str[8:10] == fac.minor_code
    ).all()
    catalog = {(c.major_code, c.minor_code): (c.owner, c.maintainer) for c in CATEGORIES}
    departments = list(zip(fac.owner_department_code, fac.maintainer_department_code, strict=True))
    assert departments == [catalog[k] for k in zip(fac.major_code, fac.minor_code, strict=True)]
    assert (fac.state == "intact").mean() > 0.85


# --- people -------------------------------------------------------------------------------


def _check_char(body: str) -> str:
    return "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]


def test_id_numbers_valid_and_consistent(city: SampleCity) -> None:
    persons = city.persons
    ids = persons.id_number
    assert ids.str.fullmatch(r"[0-9]{17}[0-9X]").all()
    assert all(_check_char(i[:17]) == i[17] for i in ids)
    assert (ids.str[6:14] == persons.birth_date.dt.strftime("%Y%m%d")).all()
    male = ids.str[16].astype(int) % 2 == 1
    assert (male == (persons.gender == "M")).all()
    assert ids.is_unique
    district = persons.household_code.str[:6]
    assert (ids.str[:6] == district).all()
    assert persons.birth_date.max() <= pd.Timestamp(REFERENCE_DATE)


def test_phones_and_names(city: SampleCity) -> None:
    phones = city.persons.phone.dropna()
    assert phones.str.fullmatch(r"1[3-9][0-9]{9}").all()
    assert city.persons.name.str.fullmatch(r"\w{2,3}").all()
    assert city.workers.phone.str.fullmatch(r"1[3-9][0-9]{9}").all()


def _ages(persons: pd.DataFrame) -> pd.Series:
    ref = pd.Timestamp(REFERENCE_DATE)
    born = persons.birth_date
    had_birthday = (born.dt.month < ref.month) | (
        (born.dt.month == ref.month) & (born.dt.day <= ref.day)
    )
    return ref.year - born.dt.year - (~had_birthday).astype(int)


def test_care_tags(city: SampleCity) -> None:
    persons = city.persons
    tags = persons.care_tags
    assert all(isinstance(t, list) and set(t) <= set(CARE_TAGS) for t in tags)
    assert (tags.str.len() == 0).mean() > 0.75
    alone = persons.household_code.map(persons.household_code.value_counts()) == 1
    age = _ages(persons)
    tagged = tags.apply(lambda t: "elderly_living_alone" in t)
    assert tagged.any()
    assert (tagged == (alone & (age >= 60))).all()
    children = tags.apply(lambda t: "left_behind_child" in t)
    assert (age[children] < 16).all()


def test_households(city: SampleCity) -> None:
    hh = city.households
    assert hh.code.is_unique
    assert set(hh.building_code) <= set(city.buildings.code)
    assert not hh.duplicated(["building_code", "room"]).any()
    assert set(city.persons.household_code) == set(hh.code)
    residential = city.buildings.set_index("code").use.loc[hh.building_code]
    assert (residential == "residential").all()


def test_workers_on_every_grid(city: SampleCity) -> None:
    workers = city.workers
    grids = set(city.level("grid").code)
    assert set(workers.role) <= set(WORKER_ROLES)
    full_time = workers[workers.role == "full_time"]
    assert set(full_time.grid_code) == grids and full_time.grid_code.is_unique
    leaders = workers[workers.role == "grid_leader"]
    assert sorted(leaders.grid_code.str[:12]) == sorted(city.level("community").code)
    assert workers.code.is_unique
    assert 0.8 < workers.on_duty.mean() < 1.0


# --- files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(city: SampleCity, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_files(city, tmp_path_factory.mktemp("city"))


def test_write_files_layout(written: dict[str, Path]) -> None:
    names = {p.name for p in written.values()}
    assert {"district.shp", "street.shp", "community.shp", "grid.shp", "buildings.shp",
            "facilities.shp", "city.gpkg", "households.csv", "persons.csv",
            "workers.csv"} == names  # fmt: skip
    for level in ("district", "street", "community", "grid"):
        shp = written[level]
        assert shp.with_suffix(".cpg").read_text().strip().upper() in {"UTF-8", "UTF8"}
        fields = pyogrio.read_info(shp)["fields"].tolist()
        assert fields == ["CODE", "NAME", "PARENT"]
    layers = {name for name, _ in pyogrio.list_layers(written["gpkg"])}
    assert set(AREA_LEVELS) | {"buildings", "facilities"} <= layers


def test_shapefiles_keep_chinese_names(city: SampleCity, written: dict[str, Path]) -> None:
    for level in ("district", "community", "grid"):
        frame = pyogrio.read_dataframe(written[level])
        expected = city.level(level)
        assert frame.NAME.tolist() == expected.name.tolist()
        assert frame.CODE.tolist() == expected.code.tolist()
        same = shapely.equals(frame.geometry.to_numpy(), _geoms(expected))
        assert same.all()
    buildings = pyogrio.read_dataframe(written["buildings"])
    assert buildings.ADDRESS.tolist() == city.buildings.address.tolist()


def test_read_files_round_trip(city: SampleCity, written: dict[str, Path]) -> None:
    back = read_files(written["gpkg"].parent)
    for table in ("areas", "buildings", "facilities"):
        a, b = getattr(city, table), getattr(back, table)
        assert list(b.columns) == list(a.columns), table
        pd.testing.assert_frame_equal(
            pd.DataFrame(b.drop(columns="geometry")),
            pd.DataFrame(a.drop(columns="geometry")).reset_index(drop=True),
            check_dtype=False,
        )
        assert shapely.equals_exact(_geoms(b), _geoms(a), tolerance=0).all(), table
    for table in ("households", "persons", "workers"):
        pd.testing.assert_frame_equal(getattr(back, table), getattr(city, table), check_dtype=False)
    assert re.fullmatch(r"\w+", back.level("grid").name.iloc[0])


def test_read_files_needs_the_geopackage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="write_files"):
        read_files(tmp_path)
