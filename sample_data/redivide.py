"""Re-divisions of the sample city's grids, for benchmarks and tests of imports."""

from __future__ import annotations

import shapely


def split_in_two(geom: shapely.Geometry) -> tuple[shapely.Polygon, shapely.Polygon] | None:
    """``geom`` cut at the north-south line through the middle of its bounds: (west,
    east), or None when either half is not a single polygon."""
    xmin, ymin, xmax, ymax = geom.bounds
    mid = (xmin + xmax) / 2
    west = shapely.intersection(geom, shapely.box(xmin - 1, ymin - 1, mid, ymax + 1))
    east = shapely.difference(geom, west)
    if not (west.geom_type == "Polygon" and east.geom_type == "Polygon"):
        return None
    return west, east
