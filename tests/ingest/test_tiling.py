"""The exact tiling test: a parent passes only if its children cover it exactly once.

Lattice cells make tilings whose answer is known: a parent square is tiled exactly
when every cell appears once. Each failure the coverage checks look for (a missing
cell, a doubled one, one outside the parent, one shifted by a nanodegree) must fail it,
whatever the ring orientation and however the cells are merged into children.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

from gridmap.ingest.tiling import tiled_parents


def _cells(n: int, x0: float = 106.0, y0: float = 29.0, size: float = 0.01) -> list[Polygon]:
    return [box(x0 + i * size, y0 + j * size, x0 + (i + 1) * size, y0 + (j + 1) * size)
            for j in range(n) for i in range(n)]  # fmt: skip


def _square(n: int, x0: float = 106.0, y0: float = 29.0, size: float = 0.01) -> Polygon:
    """The n×n square with every lattice vertex on its boundary (as a shared edge has)."""
    edge = [(x0 + k * size, y0) for k in range(n)] + [(x0 + n * size, y0 + k * size)
                                                      for k in range(n)]  # fmt: skip
    edge += [(x0 + (n - k) * size, y0 + n * size) for k in range(n)]
    edge += [(x0, y0 + (n - k) * size) for k in range(n)]
    return Polygon(edge)


def _tiled(children: list[shapely.Geometry], parents: list[shapely.Geometry],
           slot: list[int] | None = None) -> list[bool]:  # fmt: skip
    owner = np.zeros(len(children), dtype=np.int64) if slot is None else np.array(slot)
    return tiled_parents(np.array(children, dtype=object), owner,
                         np.array(parents, dtype=object)).tolist()  # fmt: skip


def test_cells_tile_their_square_in_any_orientation() -> None:
    cells = _cells(3)
    assert _tiled(cells, [_square(3)]) == [True]
    flipped = [shapely.orient_polygons(c, exterior_cw=k % 2 == 0) for k, c in enumerate(cells)]
    assert _tiled(flipped, [shapely.orient_polygons(_square(3), exterior_cw=True)]) == [True]


@pytest.mark.parametrize("damage", ["missing", "doubled", "shifted", "outside", "grown"])
def test_every_coverage_fault_fails(damage: str) -> None:
    cells = _cells(3)
    if damage == "missing":
        del cells[4]
    elif damage == "doubled":
        cells.append(cells[4])
    elif damage == "shifted":
        cells[4] = shapely.affinity.translate(cells[4], 1e-9, 0)
    elif damage == "outside":
        cells[0] = shapely.affinity.translate(cells[0], -0.01, 0)
    else:
        cells[0] = box(*np.array(cells[0].bounds) + [-0.001, 0, 0, 0])
    assert _tiled(cells, [_square(3)]) == [False]


def test_doubled_cell_in_place_of_a_missing_one_fails() -> None:
    """Same segment counts overall, but the segments do not cancel."""
    cells = _cells(3)
    cells[8] = cells[0]
    assert _tiled(cells, [_square(3)]) == [False]


def test_other_vertices_are_not_proven() -> None:
    """A tiling whose shared edges carry different vertices is left to GEOS."""
    assert _tiled(_cells(3), [box(106.0, 29.0, 106.03, 29.03)]) == [False]


def test_holes_and_multipolygons() -> None:
    cells = _cells(3)
    ring = cells[:4] + cells[5:]  # the square with its centre cell cut out
    holed = _square(3).difference(cells[4])
    assert _tiled(ring, [holed]) == [True]
    merged = shapely.union_all(cells[:4] + cells[5:])  # one child with a hole
    assert merged.geom_type == "Polygon" and len(merged.interiors) == 1
    assert _tiled([merged, cells[4]], [_square(3)]) == [True]
    far = [shapely.affinity.translate(c, 1.0, 0) for c in _cells(3)]
    two = MultiPolygon([_square(3), shapely.affinity.translate(_square(3), 1.0, 0)])
    assert _tiled(cells + far, [two]) == [True]
    assert _tiled(cells + far[1:], [two]) == [False]


def test_children_are_counted_per_parent() -> None:
    """Two parents swapping one child each: the union is tiled, neither parent is."""
    left, right = _cells(2), [shapely.affinity.translate(c, 0.02, 0) for c in _cells(2)]
    parents = [_square(2), shapely.affinity.translate(_square(2), 0.02, 0)]
    assert _tiled(left + right, parents, [0] * 4 + [1] * 4) == [True, True]
    assert _tiled(left + right, parents, [1] + [0] * 3 + [0] + [1] * 3) == [False, False]
    assert _tiled(left, parents, [0] * 4) == [True, False]  # no children: not tiled


def test_invalid_parent_is_never_tiled() -> None:
    bowtie = Polygon([(106.0, 29.0), (106.02, 29.02), (106.02, 29.0), (106.0, 29.02)])
    assert not bowtie.is_valid
    assert _tiled(_cells(2), [bowtie]) == [False]


@settings(max_examples=300, deadline=None)
@given(st.permutations(range(16)), st.sampled_from(["none", "drop", "double", "replace"]),
       st.integers(0, 15), st.lists(st.booleans(), min_size=17, max_size=17))  # fmt: skip
def test_random_cell_multisets(
    order: list[int], damage: str, at: int, merge: list[bool]
) -> None:
    """Tiled exactly when every one of the 16 cells is taken once; merging neighbours
    into one child and flipping ring orientations changes nothing."""
    picked = list(order)
    if damage == "drop":
        del picked[at]
    elif damage == "double":
        picked.insert(at, picked[at])
    elif damage == "replace":
        picked[at] = picked[(at + 1) % 16]
    cells = _cells(4)
    children: list[shapely.Geometry] = []
    for k, index in enumerate(picked):
        cell = shapely.orient_polygons(cells[index], exterior_cw=merge[k])
        if children and merge[k] and _shares_an_edge(children[-1], cell):
            children[-1] = shapely.union(children[-1], cell)
        else:
            children.append(cell)
    assert all(shapely.is_valid(children))
    assert _tiled(children, [_square(4)]) == [damage == "none"]


def _shares_an_edge(a: shapely.Geometry, b: shapely.Geometry) -> bool:
    if not shapely.touches(a, b) or shapely.intersection(a, b).length == 0:
        return False
    return bool(shapely.union(a, b).geom_type == "Polygon")

