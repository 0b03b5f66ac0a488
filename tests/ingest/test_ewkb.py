"""The NumPy EWKB encoder writes exactly the bytes shapely writes."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely import MultiPolygon, Point, Polygon

from gridmap.ingest import bulk
from gridmap.ingest.ewkb import PolygonLayout, encodable


def _shapely_hex(geoms: np.ndarray, srid: int) -> list[str]:
    return [w.hex() for w in shapely.to_wkb(shapely.set_srid(geoms, srid), include_srid=True)]


def _mixed_layer(seed: int, n: int = 400) -> np.ndarray:
    """Voronoi cells over Chongqing: plain, with one or two holes, and multi-part
    (a cell with its neighbour, or with a holed cell), in shuffled order."""
    rng = np.random.default_rng(seed)
    points = shapely.multipoints(rng.uniform([106.0, 29.0], [107.0, 30.0], size=(n, 2)))
    cells = shapely.get_parts(shapely.voronoi_polygons(points))
    cells = shapely.intersection(cells, shapely.box(106.0, 29.0, 107.0, 30.0))
    out: list[object] = []
    for i, cell in enumerate(cells):
        kind = i % 5
        if kind == 1:  # one hole
            out.append(cell.difference(cell.centroid.buffer(0.001)))
        elif kind == 2:  # two holes
            c = cell.centroid
            out.append(cell.difference(Point(c.x - 0.003, c.y).buffer(0.001))
                       .difference(Point(c.x + 0.003, c.y).buffer(0.001)))  # fmt: skip
        elif kind == 3:  # two parts, the second holed
            far = shapely.affinity.translate(out[-1] if out else cell, 2.0, 0.0)
            out.append(MultiPolygon([cell, *getattr(far, "geoms", [far])]))
        elif kind == 4:  # a one-part MultiPolygon, as shapefiles return them
            out.append(MultiPolygon([cell]))
        else:
            out.append(cell)
    layer = np.array(out, dtype=object)
    rng.shuffle(layer)
    return layer


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_multipolygons_are_shapelys_bytes_in_both_columns(seed: int) -> None:
    layer = _mixed_layer(seed)
    assert encodable(layer, multi=True)
    multi = bulk._as_multi(layer)
    geom, geom_3857 = bulk.ewkb_pair(layer, multi=True)
    assert geom == _shapely_hex(multi, 4326)
    assert geom_3857 == _shapely_hex(bulk._project_3857(multi), 3857)


def test_polygons_are_shapelys_bytes() -> None:
    layer = _mixed_layer(4)
    polygons = layer[shapely.get_type_id(layer) == 3]
    assert encodable(polygons, multi=False)
    geom, geom_3857 = bulk.ewkb_pair(polygons, multi=False)
    assert geom == _shapely_hex(polygons, 4326)
    assert geom_3857 == _shapely_hex(bulk._project_3857(polygons), 3857)


def test_only_polygons_and_only_multipolygons_each_encode() -> None:
    square = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    for layer in (np.array([square] * 3, dtype=object),
                  np.array([MultiPolygon([square, shapely.affinity.translate(square, 2)])] * 2,
                           dtype=object)):  # fmt: skip
        assert PolygonLayout(layer, multi=True).hex(4326) == _shapely_hex(
            bulk._as_multi(layer), 4326)


_SQUARE = [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]


@pytest.mark.parametrize("geojson", [
    {"type": "MultiPolygon", "coordinates": [[_SQUARE], []]},  # an empty last part
    {"type": "MultiPolygon", "coordinates": [[], [_SQUARE]]},  # an empty first part
    {"type": "Polygon", "coordinates": [_SQUARE, []]},  # an empty last ring
    {"type": "Polygon", "coordinates": [_SQUARE, [], [[.2, .2], [.4, .2], [.4, .4], [.2, .2]]]},
], ids=["empty-last-part", "empty-first-part", "empty-last-ring", "empty-middle-ring"])
def test_empty_parts_and_rings_are_shapelys_bytes(geojson: dict[str, object]) -> None:
    import json

    odd = shapely.from_geojson(json.dumps(geojson))
    square = Polygon(_SQUARE)
    for layer in (np.array([square, odd], dtype=object), np.array([odd, square], dtype=object)):
        assert encodable(layer, multi=True)
        assert PolygonLayout(layer, multi=True).hex(4326) == _shapely_hex(
            bulk._as_multi(layer), 4326)


@pytest.mark.parametrize("odd", [
    Polygon(),  # empty
    None,
    Polygon([(0, 0, 1), (1, 0, 1), (1, 1, 1)]),  # 3-D
    Point(0, 0),
    shapely.from_wkt("POLYGON M ((0 0 1, 1 0 1, 1 1 1, 0 0 1))"),
])  # fmt: skip
def test_layers_it_cannot_encode_go_through_shapely(odd: object) -> None:
    square = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    layer = np.array([square, odd], dtype=object)
    assert not encodable(layer, multi=True)
    if odd is not None and not (isinstance(odd, Point)):
        geom, _ = bulk.ewkb_pair(layer, multi=False)
        assert geom == _shapely_hex(layer, 4326)


def test_multipolygons_are_not_encoded_as_polygons() -> None:
    square = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    assert not encodable(np.array([MultiPolygon([square])], dtype=object), multi=False)
    assert not encodable(np.array([], dtype=object), multi=True)
