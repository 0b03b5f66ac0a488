"""Point → grid lookup served from memory, and conversion of input coordinates."""

from gridmap.lookup.crs import (
    bd09_to_wgs84,
    gcj02_to_wgs84,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from gridmap.lookup.engine import GridIndex, IndexStats

__all__ = [
    "GridIndex",
    "IndexStats",
    "bd09_to_wgs84",
    "gcj02_to_wgs84",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]
