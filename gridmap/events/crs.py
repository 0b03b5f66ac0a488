"""GCJ-02 → WGS84, the one place events convert Chinese web-map coordinates.

Minimal stand-in until ``gridmap.lookup.crs.to_wgs84`` lands on main (it did not exist when
this module was written); the lead swaps the import at merge. GCJ-02 is an obfuscation with
no library in PyPI's mainstream geo stack (pyproj has no such CRS), hence the hand-written
formula: the published forward transform, inverted by fixed-point iteration (error < 1 cm
after a few rounds).
"""

from __future__ import annotations

import math

_A = 6378245.0
_EE = 0.00669342162296594323


def _outside_china(lon: float, lat: float) -> bool:
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _delta(lon: float, lat: float) -> tuple[float, float]:
    x, y = lon - 105.0, lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
            + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2 / 3
            + (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2 / 3
            + (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2 / 3)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
            + (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2 / 3
            + (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2 / 3
            + (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2 / 3)
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """The forward (published) transform; identity outside China."""
    if _outside_china(lon, lat):
        return lon, lat
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def to_wgs84(lon: float, lat: float, crs: str = "wgs84") -> tuple[float, float]:
    """Coordinates in ``crs`` (``wgs84``/``cgcs2000`` or ``gcj02``) as WGS84 lon/lat."""
    if crs in ("wgs84", "cgcs2000", "epsg:4326", "epsg:4490"):
        return lon, lat
    if crs != "gcj02":
        from gridmap.errors import InvalidInputError

        raise InvalidInputError(f"crs {crs!r} is not supported here (wgs84, cgcs2000, gcj02)")
    x, y = lon, lat
    for _ in range(6):
        gx, gy = wgs84_to_gcj02(x, y)
        x, y = x - (gx - lon), y - (gy - lat)
    return x, y
