"""Input coordinate systems → EPSG:4326, including the GCJ-02/BD-09 obfuscations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Transformer

from gridmap.errors import InvalidInputError
from gridmap.lookup import crs
from gridmap.lookup.crs import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

# googollee/eviltransform python/test.py (also go/transform_test.go):
# (wgs lat, wgs lng, gcj lat, gcj lng).
EVILTRANSFORM_PAIRS = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
]


def reference_wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """The classic scalar formula (wandergis/coordtransform, eviltransform), transcribed."""
    a, ee = 6378245.0, 0.00669342162296594323
    if not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271):
        return lon, lat
    x, y = lon - 105.0, lat - 35.0
    pi = math.pi
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    d_lat += (20.0 * math.sin(6.0 * x * pi) + 20.0 * math.sin(2.0 * x * pi)) * 2.0 / 3.0
    d_lat += (20.0 * math.sin(y * pi) + 40.0 * math.sin(y / 3.0 * pi)) * 2.0 / 3.0
    d_lat += (160.0 * math.sin(y / 12.0 * pi) + 320 * math.sin(y * pi / 30.0)) * 2.0 / 3.0
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    d_lon += (20.0 * math.sin(6.0 * x * pi) + 20.0 * math.sin(2.0 * x * pi)) * 2.0 / 3.0
    d_lon += (20.0 * math.sin(x * pi) + 40.0 * math.sin(x / 3.0 * pi)) * 2.0 / 3.0
    d_lon += (150.0 * math.sin(x / 12.0 * pi) + 300.0 * math.sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad = lat / 180.0 * pi
    magic = 1 - ee * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((a * (1 - ee)) / (magic * sqrt_magic) * pi)
    d_lon = (d_lon * 180.0) / (a / sqrt_magic * math.cos(rad) * pi)
    return lon + d_lon, lat + d_lat


def china_lattice() -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.meshgrid(np.arange(73.5, 135.0, 0.37), np.arange(18.0, 53.5, 0.29))
    return lon.ravel(), lat.ravel()


def test_gcj02_round_trip_is_below_1e9_degrees() -> None:
    lon, lat = china_lattice()
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert np.abs(back_lon - lon).max() < 1e-9
    assert np.abs(back_lat - lat).max() < 1e-9
    # And the other way round: the inverse really is a preimage.
    again_lon, again_lat = wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat))
    assert np.abs(again_lon - lon).max() < 1e-9
    assert np.abs(again_lat - lat).max() < 1e-9


def test_gcj02_round_trip_at_the_105e_cusp() -> None:
    lat = np.linspace(20, 50, 101)
    lon = 105.0 + np.linspace(-1e-9, 1e-9, 101)
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert np.abs(back_lon - lon).max() < 1e-9
    assert np.abs(back_lat - lat).max() < 1e-9


def test_gcj02_offset_is_hundreds_of_metres() -> None:
    g_lon, g_lat = wgs84_to_gcj02(116.397128, 39.916527)  # Tiananmen
    offset_m = math.hypot((g_lon - 116.397128) * 85_000, (g_lat - 39.916527) * 111_000)
    assert 100 < offset_m < 700


def test_gcj02_matches_the_reference_formula() -> None:
    lon, lat = china_lattice()
    got_lon, got_lat = wgs84_to_gcj02(lon, lat)
    want = np.array([reference_wgs84_to_gcj02(x, y) for x, y in zip(lon, lat, strict=True)])
    assert np.abs(got_lon - want[:, 0]).max() < 1e-12
    assert np.abs(got_lat - want[:, 1]).max() < 1e-12
    assert reference_wgs84_to_gcj02(116.397128, 39.916527) == pytest.approx(
        tuple(map(float, wgs84_to_gcj02(116.397128, 39.916527))), abs=1e-12
    )


@pytest.mark.parametrize(("wgs_lat", "wgs_lon", "gcj_lat", "gcj_lon"), EVILTRANSFORM_PAIRS)
def test_gcj02_published_pairs(
    wgs_lat: float, wgs_lon: float, gcj_lat: float, gcj_lon: float
) -> None:
    lon, lat = wgs84_to_gcj02(wgs_lon, wgs_lat)
    assert (float(lon), float(lat)) == pytest.approx((gcj_lon, gcj_lat), abs=1e-9)
    lon, lat = gcj02_to_wgs84(gcj_lon, gcj_lat)
    assert (float(lon), float(lat)) == pytest.approx((wgs_lon, wgs_lat), abs=1e-9)


def test_wandergis_readme_values() -> None:
    # wandergis/coordtransform README, "result" block (lon, lat).
    lon, lat = wgs84_to_gcj02(116.404, 39.915)
    assert (float(lon), float(lat)) == pytest.approx(
        (116.41024449916938, 39.91640428150164), abs=1e-12
    )
    lon, lat = gcj02_to_bd09(116.404, 39.915)
    assert (float(lon), float(lat)) == pytest.approx(
        (116.41036949371029, 39.92133699351021), abs=1e-12
    )
    # Its bd09togcj02 is the one-step approximation; ours is the exact inverse, ~4e-7° away.
    lon, lat = bd09_to_gcj02(116.404, 39.915)
    assert (float(lon), float(lat)) == pytest.approx(
        (116.39762729119315, 39.90865673957631), abs=1e-6
    )
    assert tuple(map(float, gcj02_to_bd09(lon, lat))) == pytest.approx((116.404, 39.915), abs=1e-12)


@pytest.mark.parametrize(("lon", "lat"), [(139.6917, 35.6895), (-0.1276, 51.5072), (151.2, -33.9)])
def test_outside_china_gcj02_is_wgs84(lon: float, lat: float) -> None:
    assert tuple(map(float, wgs84_to_gcj02(lon, lat))) == (lon, lat)
    assert tuple(map(float, gcj02_to_wgs84(lon, lat))) == (lon, lat)
    assert tuple(map(float, to_wgs84(lon, lat, "gcj02"))) == (lon, lat)


def test_bd09_round_trip() -> None:
    lon, lat = china_lattice()
    back_lon, back_lat = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert np.abs(back_lon - lon).max() < 1e-9
    assert np.abs(back_lat - lat).max() < 1e-9
    again_lon, again_lat = wgs84_to_bd09(*bd09_to_wgs84(lon, lat))
    assert np.abs(again_lon - lon).max() < 1e-9
    assert np.abs(again_lat - lat).max() < 1e-9


@pytest.mark.parametrize("code", ["EPSG:4545", "epsg:4524", "4545"])
def test_gauss_kruger_108e_round_trip(code: str) -> None:
    rng = np.random.default_rng(4)
    lon = 106.5 + 3.0 * rng.random(500)
    lat = 28.0 + 4.0 * rng.random(500)
    target = "EPSG:" + code.split(":")[-1]
    x, y = Transformer.from_crs("EPSG:4490", target, always_xy=True).transform(lon, lat)
    if target == "EPSG:4524":  # zone 36 keeps the zone number in the false easting
        assert (x > 36_000_000).all()
    back_lon, back_lat = to_wgs84(x, y, code)
    assert np.abs(back_lon - lon).max() < 1e-9
    assert np.abs(back_lat - lat).max() < 1e-9


def test_web_mercator() -> None:
    lon, lat = to_wgs84([0.0, 20037508.342789244, 11876268.0], [0.0, 0.0, 3440230.0], "3857")
    assert lon[:2] == pytest.approx([0.0, 180.0])
    assert lat[:2] == pytest.approx([0.0, 0.0])
    assert (lon[2], lat[2]) == pytest.approx((106.685, 29.5), abs=0.01)


@pytest.mark.parametrize("code", ["4326", "EPSG:4326", "epsg:4490", 4490, " EPSG:4326 "])
def test_geographic_input_passes_through(code: str | int) -> None:
    lon, lat = to_wgs84([106.5, np.nan], [29.5, 29.5], code)
    assert lon[0] == 106.5 and lat[0] == 29.5 and np.isnan(lon[1])


@pytest.mark.parametrize("code", ["gcj02", "GCJ02", "Gcj-02", "bd09", "BD09"])
def test_chinese_web_systems_are_case_insensitive(code: str) -> None:
    lon, lat = to_wgs84(106.5, 29.5, code)
    assert abs(float(lon) - 106.5) < 0.02 and abs(float(lat) - 29.5) < 0.02


def test_gcj02_and_bd09_keep_non_finite_values() -> None:
    for code in ("gcj02", "bd09"):
        lon, lat = to_wgs84([np.nan, 106.5, 106.5], [29.5, np.inf, 29.5], code)
        assert not np.isfinite(lon[0]) and not np.isfinite(lat[1])
        assert np.isfinite(lon[2]) and np.isfinite(lat[2])


@pytest.mark.parametrize("code", ["EPSG:2000", "foo", "", "EPSG:4555", "wgs"])
def test_unknown_crs_is_rejected_by_name(code: str) -> None:
    with pytest.raises(InvalidInputError, match=repr(code)):
        to_wgs84([1.0], [2.0], code)


def test_supported_list_is_in_the_error() -> None:
    with pytest.raises(InvalidInputError) as caught:
        to_wgs84(1.0, 2.0, "EPSG:32648")
    assert crs.SUPPORTED_CRS in str(caught.value)
