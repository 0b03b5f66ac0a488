"""GridIndex against brute force: shapely.covers on every grid + lowest code wins."""

from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod, Transformer

from gridmap.errors import InvalidInputError
from gridmap.lookup import GridIndex
from gridmap.lookup.engine import _orient_sign

WEST, SOUTH, SPAN_X, SPAN_Y = 106.50, 29.50, 0.10, 0.07
CENTRE = (WEST + SPAN_X / 2, SOUTH + SPAN_Y / 2)
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Geoms = npt.NDArray[np.object_]
City = tuple[list[str], Geoms]


def voronoi_city(n_seeds: int, seed: int) -> City:
    """Voronoi grids clipped to a lobed outline, snapped so neighbours share vertices."""
    rng = np.random.default_rng(seed)
    seeds = np.column_stack(
        (WEST + SPAN_X * rng.random(n_seeds), SOUTH + SPAN_Y * rng.random(n_seeds))
    )
    angle = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    radius = 0.032 * (1 + 0.25 * np.sin(4 * angle))
    outline = shapely.Polygon(
        np.column_stack((CENTRE[0] + radius * np.cos(angle), CENTRE[1] + radius * np.sin(angle)))
    )
    frame = shapely.box(WEST - 0.1, SOUTH - 0.1, WEST + SPAN_X + 0.1, SOUTH + SPAN_Y + 0.1)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame))
    cells = shapely.set_precision(shapely.intersection(cells, outline), 1e-7)
    cells = cells[~shapely.is_empty(cells)]
    codes = [f"500103001001{i:03d}" for i in rng.permutation(cells.size)]
    return codes, cells


def brute_force(codes: list[str], geoms: Geoms, x: FloatArray, y: FloatArray) -> IntArray:
    """Index of the lowest-code grid that shapely.covers each point, -1 if none."""
    points = shapely.points(x, y)
    covered = shapely.covers(geoms[:, None], points[None, :])
    order = np.argsort(np.asarray(codes))
    hit = covered[order]
    first = np.argmax(hit, axis=0)
    return np.where(hit.any(axis=0), order[first], -1)


@pytest.fixture(scope="module")
def city() -> City:
    return voronoi_city(300, seed=11)


@pytest.fixture(scope="module")
def index(city: City) -> GridIndex:
    codes, geoms = city
    return GridIndex.build(codes, geoms)


@pytest.fixture(scope="module")
def coarse_index(city: City) -> GridIndex:
    """Few big cells: most candidates are corners or COMPLEX (answered by GEOS)."""
    codes, geoms = city
    return GridIndex.build(codes, geoms, cells_per_grid=1)


@pytest.fixture(scope="module")
def edges(city: City) -> FloatArray:
    """(x0, y0, x1, y1) of every ring edge of every grid."""
    coords, owner = shapely.get_coordinates(city[1], return_index=True)
    same = np.flatnonzero(owner[1:] == owner[:-1])
    return np.column_stack((coords[same], coords[same + 1]))


def assert_matches(index: GridIndex, city: City, x: FloatArray, y: FloatArray) -> None:
    codes, geoms = city
    got = index.lookup(x, y)
    want = brute_force(codes, geoms, x, y)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(x[i], y[i], got[i], want[i]) for i in bad[:5]]


lon = st.floats(WEST - 0.01, WEST + SPAN_X + 0.01)
lat = st.floats(SOUTH - 0.01, SOUTH + SPAN_Y + 0.01)
points = st.lists(st.tuples(lon, lat), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(points)
def test_random_points_match_brute_force(
    index: GridIndex, city: City, pts: list[tuple[float, float]]
) -> None:
    xy = np.asarray(pts)
    assert_matches(index, city, xy[:, 0], xy[:, 1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**9), st.floats(0, 1)), min_size=1, max_size=60))
def test_points_on_edges_match_brute_force(
    index: GridIndex,
    coarse_index: GridIndex,
    city: City,
    edges: FloatArray,
    picks: list[tuple[int, float]],
) -> None:
    which = np.array([p[0] for p in picks]) % len(edges)
    t = np.array([p[1] for p in picks])
    e = edges[which]
    x = e[:, 0] + t * (e[:, 2] - e[:, 0])
    y = e[:, 1] + t * (e[:, 3] - e[:, 1])
    assert_matches(index, city, x, y)
    assert_matches(coarse_index, city, x, y)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=60))
def test_vertices_match_brute_force(
    index: GridIndex, coarse_index: GridIndex, city: City, edges: FloatArray, picks: list[int]
) -> None:
    e = edges[np.array(picks) % len(edges)]
    assert_matches(index, city, e[:, 0], e[:, 1])
    assert_matches(coarse_index, city, e[:, 0], e[:, 1])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(-180, 180), st.floats(-90, 90)), min_size=1, max_size=30))
def test_points_far_outside_are_minus_one(index: GridIndex, pts: list[tuple[float, float]]) -> None:
    xy = np.asarray(pts)
    far = (np.abs(xy[:, 0] - CENTRE[0]) > 0.1) | (np.abs(xy[:, 1] - CENTRE[1]) > 0.1)
    assert (index.lookup(xy[far, 0], xy[far, 1]) == -1).all()


def test_bulk_random_edge_and_vertex_points(
    index: GridIndex, coarse_index: GridIndex, city: City, edges: FloatArray
) -> None:
    rng = np.random.default_rng(5)
    n = 3000
    x = WEST - 0.01 + (SPAN_X + 0.02) * rng.random(n)
    y = SOUTH - 0.01 + (SPAN_Y + 0.02) * rng.random(n)
    e = edges[rng.integers(0, len(edges), n)]
    t = rng.random(n)
    x = np.r_[x, e[:, 0] + t * (e[:, 2] - e[:, 0]), e[:, 0]]
    y = np.r_[y, e[:, 1] + t * (e[:, 3] - e[:, 1]), e[:, 1]]
    assert_matches(index, city, x, y)
    assert_matches(coarse_index, city, x, y)


def squares() -> tuple[list[str], list[shapely.Polygon]]:
    """Three grids meeting at (106.01, 29.01): two below, one above."""
    a = shapely.box(106.00, 29.00, 106.01, 29.01)
    b = shapely.box(106.01, 29.00, 106.02, 29.01)
    c = shapely.box(106.00, 29.01, 106.02, 29.02)
    return ["500103001001003", "500103001001002", "500103001001001"], [a, b, c]


def test_shared_edge_goes_to_lower_code() -> None:
    codes, geoms = squares()
    index = GridIndex.build(codes, geoms)
    # On the edge between a (…003) and b (…002): b has the lower code.
    assert index.codes_for(index.lookup([106.01], [29.005])) == ["500103001001002"]
    # Same edge, codes swapped: a now wins.
    swapped = GridIndex.build([codes[1], codes[0], codes[2]], geoms)
    assert swapped.codes_for(swapped.lookup(106.01, 29.005)) == ["500103001001002"]
    assert swapped.lookup(106.01, 29.005) == 0


def test_vertex_shared_by_three_goes_to_lowest_code() -> None:
    codes, geoms = squares()
    index = GridIndex.build(codes, geoms)
    assert index.lookup(106.01, 29.01) == 2  # c, code …001
    # On the edge between a/b below and c above: c is lower than both.
    assert index.lookup(106.005, 29.01) == 2
    assert index.lookup(106.015, 29.01) == 2
    # Interior points keep their own grid.
    assert list(index.lookup([106.005, 106.015, 106.01], [29.005, 29.005, 29.015])) == [0, 1, 2]


def test_overlapping_grids_give_lowest_code_inside_the_overlap() -> None:
    big = shapely.box(106.0, 29.0, 106.02, 29.02)
    small = shapely.box(106.005, 29.005, 106.01, 29.01)
    index = GridIndex.build(["2", "1"], [big, small])
    assert list(index.lookup([106.007, 106.015], [29.007, 29.015])) == [1, 0]
    index = GridIndex.build(["1", "2"], [big, small])
    assert list(index.lookup([106.007, 106.015], [29.007, 29.015])) == [0, 0]


def test_holes_multipolygons_and_invalid_grids_follow_geos() -> None:
    rng = np.random.default_rng(2)
    donut = shapely.box(106.0, 29.0, 106.02, 29.02).difference(
        shapely.box(106.005, 29.005, 106.015, 29.015)
    )
    plug = shapely.box(106.005, 29.005, 106.015, 29.015)
    islands = shapely.MultiPolygon(
        [shapely.box(106.03, 29.0, 106.04, 29.01), shapely.box(106.04, 29.01, 106.05, 29.02)]
    )
    bowtie = shapely.Polygon([(106.06, 29.0), (106.07, 29.01), (106.07, 29.0), (106.06, 29.01)])
    codes = ["4", "3", "2", "1"]
    geoms = np.array([donut, plug, islands, bowtie], dtype=object)
    index = GridIndex.build(codes, geoms, cells_per_grid=16)
    coords = shapely.get_coordinates(geoms)
    x = np.r_[106.0 + 0.075 * rng.random(4000), coords[:, 0]]
    y = np.r_[29.0 + 0.022 * rng.random(4000), coords[:, 1]]
    assert_matches(index, (codes, geoms), x, y)


def test_non_finite_coordinates_are_minus_one(index: GridIndex) -> None:
    x = np.array([np.nan, np.inf, -np.inf, CENTRE[0], CENTRE[0], np.nan])
    y = np.array([CENTRE[1], CENTRE[1], CENTRE[1], np.nan, np.inf, np.nan])
    assert (index.lookup(x, y) == -1).all()


def test_lookup_keeps_the_input_shape(index: GridIndex) -> None:
    x = np.full((2, 3), CENTRE[0])
    result = index.lookup(x, CENTRE[1])
    assert result.shape == (2, 3)
    assert result.dtype == np.int32
    assert index.lookup(CENTRE[0], CENTRE[1]).shape == ()


def test_nearest_snaps_only_within_the_distance() -> None:
    codes, geoms = squares()
    index = GridIndex.build(codes, geoms)
    # 50 m east of b's east edge (x = 106.02), level with its middle.
    probe_x = 106.02 + 50.0 / (111_320.0 * np.cos(np.radians(29.005)))
    want = Geod(ellps="WGS84").inv(probe_x, 29.005, 106.02, 29.005)[2]
    idx, dist = index.nearest([probe_x, 106.005], [29.005, 29.005], 100.0)
    assert list(idx) == [1, 0]
    assert dist[0] == pytest.approx(want, abs=0.01)
    assert dist[1] == 0.0
    idx, dist = index.nearest(probe_x, 29.005, 30.0)
    assert idx == -1 and np.isnan(dist)
    assert index.nearest(np.nan, 29.005, 1000.0)[0] == -1
    assert index.nearest(107.0, 29.005, 1000.0)[0] == -1


def test_nearest_agrees_with_an_azimuthal_equidistant_brute_force(
    index: GridIndex, city: City
) -> None:
    codes, geoms = city
    rng = np.random.default_rng(9)
    x = CENTRE[0] + rng.uniform(-0.045, 0.045, 400)
    y = CENTRE[1] + rng.uniform(-0.045, 0.045, 400)
    idx, dist = index.nearest(x, y, 400.0)
    outside = np.flatnonzero(index.lookup(x, y) < 0)[:40]
    assert outside.size > 10
    for k in outside:
        aeqd = Transformer.from_crs(
            "EPSG:4326", f"+proj=aeqd +lat_0={y[k]} +lon_0={x[k]} +datum=WGS84", always_xy=True
        )
        local = shapely.transform(geoms, lambda c, t=aeqd: np.column_stack(t.transform(*c.T)))
        metres = shapely.distance(local, shapely.Point(0, 0))
        if metres.min() > 400.0:
            assert idx[k] == -1
        else:
            assert metres[idx[k]] == pytest.approx(metres.min(), abs=0.01)
            assert dist[k] == pytest.approx(metres.min(), abs=0.01)


def test_codes_for_and_stats(index: GridIndex, city: City) -> None:
    codes, _ = city
    assert index.codes_for([0, -1, 2]) == [codes[0], None, codes[2]]
    stats = index.stats()
    assert stats.grids == len(codes) == len(index)
    assert stats.interior_fraction + stats.empty_fraction + stats.boundary_fraction == (
        pytest.approx(1.0)
    )
    assert stats.build_seconds > 0 and stats.memory_bytes > 0


def test_build_rejects_bad_input() -> None:
    box = shapely.box(106.0, 29.0, 106.01, 29.01)
    with pytest.raises(InvalidInputError, match="repeated grid codes: 1"):
        GridIndex.build(["1", "1"], [box, box])
    with pytest.raises(InvalidInputError, match="2 codes but 1"):
        GridIndex.build(["1", "2"], [box])
    with pytest.raises(InvalidInputError, match="without a polygon"):
        GridIndex.build(["1"], [shapely.Point(106, 29)])


def test_empty_index_finds_nothing() -> None:
    index = GridIndex.build([], [])
    assert (index.lookup([106.0, np.nan], [29.0, 29.0]) == -1).all()
    assert index.nearest(106.0, 29.0, 100.0)[0] == -1


def _exact_orientation(a: tuple[float, ...], p: tuple[float, float]) -> int:
    ax, ay, bx, by = (Fraction(v) for v in a)
    px, py = Fraction(p[0]), Fraction(p[1])
    det = (ax - px) * (by - py) - (ay - py) * (bx - px)
    return (det > 0) - (det < 0)


coordinate = st.floats(106.0, 106.1)


@settings(max_examples=300, deadline=None)
@given(st.tuples(coordinate, coordinate, coordinate, coordinate), st.floats(0, 1))
def test_orientation_sign_is_exact_near_the_line(
    seg: tuple[float, float, float, float], t: float
) -> None:
    ax, ay, bx, by = seg
    # Points rounded onto (or next to) the line: the float determinant is unreliable.
    px, py = ax + t * (bx - ax), ay + t * (by - ay)
    nudged = [(px, py), (np.nextafter(px, 200.0), py), (px, np.nextafter(py, 0.0))]
    for qx, qy in nudged:
        sign, unknown = _orient_sign(*(np.array([v]) for v in (ax, ay, bx, by, qx, qy)))
        assert not unknown[0]
        assert sign[0] == _exact_orientation(seg, (qx, qy))


def _near_collinear_point(
    rng: np.random.Generator,
) -> tuple[tuple[float, ...], tuple[float, float]]:
    """Segment a→b and a lattice point p with orient2d(a, b, p) = ±ulp_x·ulp_y.

    The float determinant is the difference of two ~80-bit products rounded to 53
    bits, so its sign is noise here: only an exact evaluation gets it right.
    """
    ax, ay = 106.25, 29.5
    ux, uy = np.spacing(ax), np.spacing(ay)
    while True:
        k1, k2 = (int(v) for v in rng.integers(10**10, 10**11, 2))
        g, s, t = _extended_gcd(k1, k2)
        if g == 1:
            break
    # k1*j2 - k2*j1 = 1 with j2 = s, j1 = -t; shift along (k1, k2) into the segment.
    j1, j2 = -t, s
    m = -(j1 // k1)
    j1, j2 = j1 + m * k1, j2 + m * k2
    seg = (ax, ay, ax + k1 * ux, ay + k2 * uy)
    return seg, (ax + j1 * ux, ay + j2 * uy)


def _extended_gcd(a: int, b: int) -> tuple[int, int, int]:
    if b == 0:
        return a, 1, 0
    g, s, t = _extended_gcd(b, a % b)
    return g, t, s - (a // b) * t


def test_orientation_sign_is_exact_for_adversarial_points() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        seg, p = _near_collinear_point(rng)
        assert _exact_orientation(seg, p) == 1
        sign, unknown = _orient_sign(*(np.array([v]) for v in (*seg, *p)))
        assert not unknown[0] and sign[0] == 1


def test_lookup_is_exact_for_adversarial_points() -> None:
    rng = np.random.default_rng(3)
    seg, p = _near_collinear_point(rng)
    ax, ay, bx, by = seg
    # Two triangles sharing the edge a→b; p is strictly left of it (in "left").
    left = shapely.Polygon([(ax, ay), (bx, by), (ax - 0.01, by)])
    right = shapely.Polygon([(ax, ay), (bx + 0.01, ay), (bx, by)])
    codes, geoms = ["2", "1"], np.array([left, right], dtype=object)
    index = GridIndex.build(codes, geoms)
    assert index.lookup(p[0], p[1]) == 0
    assert_matches(index, (codes, geoms), np.array([p[0], ax, bx]), np.array([p[1], ay, by]))


def test_points_exactly_on_raster_cell_edges() -> None:
    """Grid edges on the raster's own cell lines: cells are classified with padded boxes."""
    outer = (106.0, 29.0, 106.02, 29.01)
    halves = [shapely.box(106.0, 29.0, 106.01, 29.01), shapely.box(106.01, 29.0, 106.02, 29.01)]
    frame = GridIndex.build(["a", "b"], halves)._frame  # the frame depends on bounds and count
    splits = frame.x0 + frame.size * np.arange(1, 200)
    splits = splits[(splits > outer[0] + 1e-4) & (splits < outer[2] - 1e-4)][:12]
    y = np.linspace(29.001, 29.009, 7)
    for split in splits:
        west = shapely.box(outer[0], outer[1], split, outer[3])
        east = shapely.box(split, outer[1], outer[2], outer[3])
        codes, geoms = ["2", "1"], np.array([west, east], dtype=object)
        index = GridIndex.build(codes, geoms)
        assert index._frame == frame
        xs = np.r_[np.full(y.size, split), np.nextafter(split, 0.0), np.nextafter(split, 200.0)]
        ys = np.r_[y, 29.005, 29.005]
        assert list(index.lookup(xs, ys)) == [1] * y.size + [0, 1]
        assert_matches(index, (codes, geoms), xs, ys)


def test_orientation_never_returns_a_wrong_sign_for_inexact_differences() -> None:
    """Kettner et al.'s classroom example: float orient2d is wrong all over this grid.

    The differences are not exact doubles here, so the engine may answer "unknown"
    (and ask GEOS) but must never return a wrong sign.
    """
    u = 2.0**-53
    offsets = np.arange(256) * u
    px, py = (v.ravel() for v in np.meshgrid(0.5 + offsets, 0.5 + offsets))
    seg = (
        np.full(px.size, 12.0),
        np.full(px.size, 12.0),
        np.full(px.size, 24.0),
        np.full(px.size, 24.0),
    )
    sign, unknown = _orient_sign(*seg, px, py)
    exact = np.array(
        [_exact_orientation((12.0, 12.0, 24.0, 24.0), p) for p in zip(px, py, strict=True)]
    )
    assert (unknown | (sign == exact)).all()
    assert (sign[~unknown] == exact[~unknown]).any()


def test_index_survives_pickling(index: GridIndex, edges: FloatArray) -> None:
    copy = pickle.loads(pickle.dumps(index))
    x = np.r_[edges[:200, 0], CENTRE[0]]
    y = np.r_[edges[:200, 1], CENTRE[1]]
    assert (copy.lookup(x, y) == index.lookup(x, y)).all()
    assert copy.codes == index.codes
