"""An exact, expected linear-time test that areas tile their parents, by cancelling boundary
segments.

Orient every ring so its area lies on its left (exteriors counter-clockwise, holes
clockwise) and give each segment a sign: +1 when it is stored in canonical direction
(smaller endpoint first), -1 when reversed. For each parent add its children's signed
segments and subtract its own. Where every segment key nets to zero, the sum of the
children's indicator functions equals the parent's almost everywhere: crossing any
boundary the children's indicators change by exactly as much as the parent's. So no
two children overlap by any area, no part of the parent is uncovered and no child
reaches outside it — the three coverage checks at once, exactly, without GEOS.

The test is one-sided. A parent that passes is proven tiled; one that fails may still
be tiled with different vertices (say, one edge of a child split where its neighbour
is not), so the callers run the GEOS checks on the children of failing parents only.
It assumes valid polygons (callers pass only children that passed ``is_valid`` and
check the parents here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD], dtype=np.uint64)  # fmt: skip


@dataclass
class Segments:
    """Ring segments in canonical direction with their sign and owner (a parent slot)."""

    owner: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    sign: np.ndarray


def tiled_parents(
    children: np.ndarray, slot: np.ndarray, parents: np.ndarray, *, parents_valid: bool = False
) -> np.ndarray:
    """Which parents their children tile exactly (a mask over ``parents``).

    ``slot`` gives each child's parent as an index into ``parents`` (-1: none; such
    children are left out). Children must be valid polygons or multipolygons; invalid
    parents are never reported tiled (``parents_valid``: the caller checks that).
    """
    tiled = np.zeros(len(parents), dtype=bool)
    keep = slot >= 0
    if not keep.any():
        return tiled
    own = ring_segments(children[keep], slot[keep])
    theirs = ring_segments(parents, np.arange(len(parents)))
    unbalanced = _unbalanced_owners(
        np.concatenate([own.owner, theirs.owner]),
        np.concatenate([own.lo, theirs.lo]),
        np.concatenate([own.hi, theirs.hi]),
        np.concatenate([own.sign, -theirs.sign]),
    )  # fmt: skip
    tiled[np.unique(slot[keep])] = True
    tiled[unbalanced] = False
    if not parents_valid:
        tiled &= shapely.is_valid(parents)
    return tiled


def ring_segments(geoms: np.ndarray, owner: np.ndarray) -> Segments:
    """Every ring segment of ``geoms`` (polygons or multipolygons), area on its left,
    stored smaller endpoint first with sign -1 where that reverses it."""
    coords, ring, exterior, ring_geom = _rings(geoms)
    inner = ring[1:] == ring[:-1]  # coordinate i starts a segment of its ring
    a, b, seg_ring = coords[:-1][inner], coords[1:][inner], ring[:-1][inner]
    cross = a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]
    area2 = np.bincount(seg_ring, weights=cross, minlength=exterior.size)
    ring_sign = np.where((area2 > 0) == exterior, 1, -1).astype(np.int64)
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo = np.where(swap[:, None], b, a)
    hi = np.where(swap[:, None], a, b)
    sign = ring_sign[seg_ring] * np.where(swap, -1, 1)
    return Segments(np.asarray(owner, dtype=np.int64)[ring_geom[seg_ring]], lo, hi, sign)


def _rings(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates of all rings; per coordinate its ring; per ring whether it is an
    exterior and which geometry it belongs to. Polygons without holes (the usual
    grid) take the fast path: their coordinates are their one ring."""
    geoms = np.asarray(geoms, dtype=object)
    simple = (shapely.get_type_id(geoms) == 3) & (shapely.get_num_interior_rings(geoms) == 0)
    first = np.flatnonzero(simple)
    coords_s, ring_s = shapely.get_coordinates(geoms[first], return_index=True)
    rest = np.flatnonzero(~simple)
    parts, part_geom = shapely.get_parts(geoms[rest], return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    exterior_o = np.r_[True, ring_part[1:] != ring_part[:-1]] if rings.size else np.zeros(0, bool)
    coords_o, ring_o = shapely.get_coordinates(rings, return_index=True)
    coords = np.concatenate([coords_s, coords_o])
    ring = np.concatenate([ring_s, ring_o + first.size])
    exterior = np.concatenate([np.ones(first.size, dtype=bool), exterior_o])
    ring_geom = np.concatenate([first, rest[part_geom[ring_part]]])
    return coords, ring, exterior, ring_geom


def _unbalanced_owners(owner: np.ndarray, lo: np.ndarray, hi: np.ndarray, sign: np.ndarray
                ) -> np.ndarray:  # fmt: skip
    """Owners with a segment key (owner, lo, hi) whose signs do not sum to zero.

    Keys are grouped by a 64-bit hash; every member is then compared with its group's
    first member, and on any collision the keys are grouped exactly (sorted) instead.
    """
    key = np.column_stack([owner.view(np.uint64) if owner.dtype == np.uint64 else
                           owner.astype(np.int64).view(np.uint64),
                           np.ascontiguousarray(lo).view(np.uint64).reshape(-1, 2),
                           np.ascontiguousarray(hi).view(np.uint64).reshape(-1, 2)])
    with np.errstate(over="ignore"):
        mixed = key * _MIX
        h = mixed[:, 0] ^ (mixed[:, 1] >> np.uint64(7)) ^ mixed[:, 2]
        h ^= (mixed[:, 3] >> np.uint64(13)) ^ (mixed[:, 4] << np.uint64(3))
    group, uniques = pd.factorize(h)
    first = np.empty(len(uniques), dtype=np.int64)
    first[group[::-1]] = np.arange(len(group))[::-1]
    if not (key == key[first[group]]).all():
        _, group = np.unique(key, axis=0, return_inverse=True)
        group = group.ravel()
        first = np.empty(group.max(initial=-1) + 1, dtype=np.int64)
        first[group[::-1]] = np.arange(len(group))[::-1]
    net = np.bincount(group, weights=sign, minlength=len(first))
    return np.unique(owner[first[np.flatnonzero(net != 0)]])
