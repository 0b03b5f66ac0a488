"""Lookups for the command line: one point, or a CSV / Parquet file of points."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gridmap.errors import InvalidInputError, NotFoundError
from gridmap.lookup.service import LookupService
from gridmap.lookup.tabular import LAT_NAMES, LON_NAMES, CsvLookup, CsvReport

CHUNK_BYTES = 1 << 20


def lookup_one(
    service: LookupService,
    lon: float,
    lat: float,
    crs: str = "4326",
    as_of: str | None = None,
    snap: float | None = None,
) -> dict[str, Any]:
    """The same answer as ``GET /api/v1/lookup`` for one point."""
    res = service.locate([lon], [lat], crs, as_of, snap)
    if res.errors:
        raise InvalidInputError(res.errors[0])
    described = service.describe(res.snapshot, int(res.index[0]))
    answer = {"generation": res.generation, "lon": float(res.lon[0]), "lat": float(res.lat[0])}
    answer.update(described or {"grid": None})
    if res.distance_m is not None and not np.isnan(res.distance_m[0]):
        answer["distance_m"] = round(float(res.distance_m[0]), 3)
    return answer


def lookup_file(
    service: LookupService,
    infile: Path,
    outfile: Path,
    crs: str = "4326",
    as_of: str | None = None,
    snap: float | None = None,
) -> CsvReport:
    """Answer every point of a CSV or Parquet file into ``outfile`` (same format)."""
    if not infile.exists():
        raise NotFoundError(f"{infile}: no such file")
    suffix = infile.suffix.lower()
    if suffix == ".parquet":
        return _parquet(service, infile, outfile, crs, as_of, snap)
    if suffix not in (".csv", ".txt"):
        raise InvalidInputError(f"{infile}: expected a .csv or .parquet file")
    job = CsvLookup(service, crs, as_of, snap)
    with outfile.open("wb") as out:
        for chunk in job.process(_read_chunks(infile)):
            out.write(chunk)
    return job.report


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            yield chunk


def _parquet(
    service: LookupService,
    infile: Path,
    outfile: Path,
    crs: str,
    as_of: str | None,
    snap: float | None,
) -> CsvReport:
    import pandas as pd

    frame = pd.read_parquet(infile)
    lon_col = _column(frame.columns, LON_NAMES, "longitude", infile)
    lat_col = _column(frame.columns, LAT_NAMES, "latitude", infile)
    xs = pd.to_numeric(frame[lon_col], errors="coerce").to_numpy(np.float64)
    ys = pd.to_numeric(frame[lat_col], errors="coerce").to_numpy(np.float64)
    res = service.locate(xs, ys, crs, as_of, snap)
    codes = res.snapshot.index.codes_for(res.index)
    frame["grid_code"] = codes
    frame["error"] = [res.errors.get(i) for i in range(len(frame))]
    frame.to_parquet(outfile, index=False)
    located = sum(c is not None for c in codes)
    bad = [{"line": i + 1, "problem": f"row {i + 1}: {m}"} for i, m in res.errors.items()]
    return CsvReport(len(frame), located, len(frame) - located - len(bad), bad, res.generation)


def _column(columns: Any, names: tuple[str, ...], what: str, path: Path) -> str:
    lowered = {str(c).lower(): str(c) for c in columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise InvalidInputError(f"{path}: no {what} column (expected one of {', '.join(names)})")
