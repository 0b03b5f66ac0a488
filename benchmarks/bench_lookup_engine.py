"""Point → grid: GridIndex.lookup against shapely STRtree ``covered_by`` in one run.

Builds a Voronoi "city" of N grids over ~1° × 0.7°, draws random points plus points on
shared edges and exactly on vertices, answers them with both engines (the peer's tie
rule: lowest code among the covering grids), asserts identical answers and prints
points/s and the ratio. Single process, single core.

    python -m benchmarks.bench_lookup_engine --grids 65000 --points 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely import STRtree

from gridmap.lookup import GridIndex

WEST, SOUTH, WIDTH, HEIGHT = 106.0, 29.2, 1.0, 0.7


@dataclass(frozen=True)
class City:
    codes: list[str]
    geoms: npt.NDArray[np.object_]


def sample_city(grids: int, seed: int) -> City:
    """The grids of gridmap's own sample city (what `gridmap sample --grids N` loads)."""
    from sample_data.city import generate_city

    areas = generate_city(grids=grids, seed=seed).areas
    grid_rows = areas[areas["level"] == "grid"]
    return City(codes=list(grid_rows["code"]), geoms=np.asarray(grid_rows.geometry.values))


def make_city(grids: int, seed: int) -> City:
    """Voronoi grids clipped to a lobed outline, snapped to 1e-7° (shared vertices)."""
    rng = np.random.default_rng(seed)
    outline = _outline()
    # Oversample so that about ``grids`` seeds fall inside the outline.
    share = outline.area / (WIDTH * HEIGHT)
    n_seeds = int(grids / share * 1.02)
    seeds = np.column_stack(
        (WEST + WIDTH * rng.random(n_seeds), SOUTH + HEIGHT * rng.random(n_seeds))
    )
    frame = shapely.box(WEST - 0.1, SOUTH - 0.1, WEST + WIDTH + 0.1, SOUTH + HEIGHT + 0.1)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame))
    cells = shapely.set_precision(shapely.intersection(cells, outline), 1e-7)
    cells = cells[~shapely.is_empty(cells) & (shapely.area(cells) > 0)][:grids]
    return City(codes=_codes(cells), geoms=cells)


def _outline() -> shapely.Polygon:
    angle = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)
    radius = 1.0 + 0.08 * np.sin(5.0 * angle) + 0.05 * np.cos(3.0 * angle)
    x = WEST + WIDTH / 2 + 0.46 * WIDTH * radius * np.cos(angle)
    y = SOUTH + HEIGHT / 2 + 0.46 * HEIGHT * radius * np.sin(angle)
    return shapely.set_precision(shapely.Polygon(np.column_stack((x, y))), 1e-7)


def _codes(cells: npt.NDArray[np.object_]) -> list[str]:
    """15-digit codes numbered north→south in bands, west→east inside a band."""
    centre = shapely.centroid(cells)
    band = np.floor((SOUTH + HEIGHT - shapely.get_y(centre)) / 0.01)
    order = np.lexsort((shapely.get_x(centre), band))
    codes = np.empty(cells.size, dtype=object)
    codes[order] = [f"500103{i:09d}" for i in range(cells.size)]
    return list(codes)


def make_points(
    city: City, n_random: int, n_edge: int, n_vertex: int, seed: int
) -> npt.NDArray[np.float64]:
    """Random points over the bbox (some outside the city), edge points and vertices."""
    rng = np.random.default_rng(seed + 1)
    random = np.column_stack(
        (
            WEST - 0.02 + (WIDTH + 0.04) * rng.random(n_random),
            SOUTH - 0.02 + (HEIGHT + 0.04) * rng.random(n_random),
        )
    )
    coords, owner = shapely.get_coordinates(city.geoms, return_index=True)
    pick = rng.integers(0, coords.shape[0] - 1, n_edge * 2)
    pick = pick[owner[pick] == owner[pick + 1]][:n_edge]
    t = rng.random(pick.size)[:, None]
    edge = coords[pick] + t * (coords[pick + 1] - coords[pick])
    vertex = coords[rng.integers(0, coords.shape[0], n_vertex)]
    return np.vstack((random, edge, vertex))


def strtree_lookup(
    tree: STRtree, ranks: npt.NDArray[np.int64], xy: npt.NDArray[np.float64]
) -> npt.NDArray[np.int32]:
    """The peer: STRtree covered_by, then the lowest code among covering grids."""
    point_idx, grid_idx = tree.query(shapely.points(xy), predicate="covered_by")
    best = np.full(xy.shape[0], np.iinfo(np.int64).max)
    np.minimum.at(best, point_idx, ranks[grid_idx])
    by_rank = np.argsort(ranks)
    found = best < ranks.size
    return np.where(found, by_rank[np.where(found, best, 0)], -1).astype(np.int32)


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


def best_time(
    repeat: int, run: Callable[[], npt.NDArray[np.int32]]
) -> tuple[Timing, npt.NDArray[np.int32]]:
    """Best wall and CPU time of ``repeat`` runs (CPU time shows a busy shared machine)."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    assert result is not None
    return Timing(min(walls), min(cpus)), result


def compare(
    label: str,
    index: GridIndex,
    tree: STRtree,
    ranks: npt.NDArray[np.int64],
    xy: npt.NDArray[np.float64],
    repeat: int,
) -> int:
    """Time both engines on ``xy``, print the ratio, return the number of mismatches."""
    ours, ours_result = best_time(repeat, lambda: index.lookup(xy[:, 0], xy[:, 1]))
    peer, peer_result = best_time(repeat, lambda: strtree_lookup(tree, ranks, xy))
    mismatches = int(np.count_nonzero(ours_result != peer_result))
    n = xy.shape[0]
    print(f"{label}: {n:,} points, {np.count_nonzero(ours_result >= 0):,} covered")
    print(
        f"  GridIndex.lookup   {ours.wall:7.3f} s wall {ours.cpu:7.3f} s cpu "
        f"{n / ours.wall / 1e6:7.2f} M points/s"
    )
    print(
        f"  STRtree covered_by {peer.wall:7.3f} s wall {peer.cpu:7.3f} s cpu "
        f"{n / peer.wall / 1e6:7.2f} M points/s (incl. point creation and tie rule)"
    )
    print(
        f"  ratio {peer.wall / ours.wall:.1f}x wall, {peer.cpu / ours.cpu:.1f}x cpu; "
        f"mismatches {mismatches}"
    )
    return mismatches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=65000)
    parser.add_argument("--points", type=int, default=1_000_000, help="random points")
    parser.add_argument("--edge-points", type=int, default=20_000)
    parser.add_argument("--vertex-points", type=int, default=5_000)
    parser.add_argument("--cells-per-grid", type=float, default=64.0)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for both engines")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--voronoi", action="store_true", help="a plain Voronoi city instead of the sample city"
    )
    args = parser.parse_args(argv)

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    started = time.perf_counter()
    city = make_city(args.grids, args.seed) if args.voronoi else sample_city(args.grids, 42)
    xy = make_points(city, args.points, args.edge_points, args.vertex_points, args.seed)
    print(
        f"city: {city.geoms.size} grids, {xy.shape[0]:,} points "
        f"({args.edge_points:,} on edges, {args.vertex_points:,} on vertices); "
        f"generated in {time.perf_counter() - started:.1f} s"
    )

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    index = GridIndex.build(city.codes, city.geoms, cells_per_grid=args.cells_per_grid)
    stats = index.stats()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"GridIndex.build: {stats.build_seconds:.1f} s, {stats.cells:,} cells of "
        f"{stats.cell_size_deg * 111_000:.0f} m, interior {stats.interior_fraction:.1%}, "
        f"empty {stats.empty_fraction:.1%}, boundary {stats.boundary_fraction:.1%}, "
        f"{stats.constraints:,} constraints ({stats.complex_constraints:,} complex), "
        f"arrays {stats.memory_bytes / 2**20:.0f} MiB, "
        f"peak RSS +{(rss_after - rss_before) / 1024:.0f} MiB"
    )

    started = time.perf_counter()
    tree = STRtree(city.geoms)
    ranks = np.argsort(np.argsort(np.asarray(city.codes)))
    print(f"STRtree build: {time.perf_counter() - started:.2f} s")

    special = xy[args.points :]
    mismatches = compare("all points", index, tree, ranks, xy, args.repeat)
    mismatches += compare("edge and vertex points only", index, tree, ranks, special, args.repeat)
    if mismatches:
        print("FAIL: answers differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
