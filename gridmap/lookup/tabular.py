"""Batch lookups over CSV streams (API and CLI share this).

Input: a header line naming a longitude and a latitude column (``lon``/``lng``/
``longitude``/``x`` and ``lat``/``latitude``/``y``, any case) and any other columns,
which pass through unchanged. Output: every input line, in order, followed by
``grid_code`` and ``error`` columns. Rows that cannot be read get an empty code and an
error naming the line and field; the good rows are answered all the same.

The stream is processed in blocks of lines, so neither the input nor the output is
held in memory whole. A quoted field may not contain a line break.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from gridmap.errors import InvalidInputError
from gridmap.lookup.service import LookupService

LON_NAMES = ("lon", "lng", "longitude", "x")
LAT_NAMES = ("lat", "latitude", "y")
BLOCK_ROWS = 100_000


@dataclass
class CsvReport:
    """What a CSV run did: rows read, answered, outside coverage, and bad rows."""

    rows: int = 0
    located: int = 0
    outside: int = 0
    bad: list[dict[str, object]] = field(default_factory=list)
    generation: int | None = None


def find_columns(header: list[str]) -> tuple[int, int]:
    """Positions of the longitude and latitude columns in ``header``."""
    lowered = [h.strip().lower() for h in header]

    def position(names: tuple[str, ...], what: str) -> int:
        for name in names:
            if name in lowered:
                return lowered.index(name)
        raise InvalidInputError(
            f"CSV header has no {what} column (expected one of {', '.join(names)}); "
            f"found: {', '.join(header)}",
            details=[{"line": 1, "field": what}],
        )

    return position(LON_NAMES, "longitude"), position(LAT_NAMES, "latitude")


class CsvLookup:
    """Streams CSV lines through a :class:`LookupService`."""

    def __init__(
        self,
        service: LookupService,
        crs: str = "4326",
        as_of: int | str | datetime | None = None,
        snap_m: float | None = None,
        block_rows: int = BLOCK_ROWS,
    ):
        self.service = service
        self.crs = crs
        self.as_of = as_of
        self.snap_m = snap_m
        self.block_rows = block_rows
        self.report = CsvReport()
        self._width = 2

    def process(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield output CSV bytes for input CSV ``chunks`` (any chunk boundaries)."""
        lines = _lines(chunks)
        header_line = next(lines, None)
        if header_line is None:
            raise InvalidInputError("CSV is empty: expected a header line with lon,lat")
        header = next(csv.reader([header_line]))
        lon_col, lat_col = find_columns(header)
        self._width = len(header)
        yield (header_line + ",grid_code,error\n").encode()
        line_no = 1
        block: list[str] = []
        for line in lines:
            if not line.strip():
                line_no += 1
                continue
            block.append(line)
            if len(block) >= self.block_rows:
                yield self._answer(block, line_no + 1, lon_col, lat_col)
                line_no += len(block)
                block = []
        if block:
            yield self._answer(block, line_no + 1, lon_col, lat_col)

    def _answer(self, block: list[str], first_line: int, lon_col: int, lat_col: int) -> bytes:
        xs, ys, errors = _parse_block(block, first_line, lon_col, lat_col)
        result = self.service.locate(xs, ys, self.crs, self.as_of, self.snap_m)
        for row, message in result.errors.items():
            errors.setdefault(row, f"line {first_line + row}: {message}")
        codes = result.index
        names = result.snapshot.index.codes
        out: list[str] = []
        for row, (line, grid) in enumerate(zip(block, codes.tolist(), strict=True)):
            problem = errors.get(row)
            if problem is not None:
                out.append(f"{_pad(line, self._width)},,{_quote(problem)}")
                self.report.bad.append({"line": first_line + row, "problem": problem})
            else:
                out.append(f"{line},{names[grid] if grid >= 0 else ''},")
        self.report.rows += len(block)
        located = int(np.count_nonzero(codes >= 0))
        self.report.located += located
        self.report.outside += len(block) - located - len(errors)
        self.report.generation = result.generation
        return ("\n".join(out) + "\n").encode()


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        parts = pending.split(b"\n")
        pending = parts.pop()
        for part in parts:
            yield _decode(part)
    if pending:
        yield _decode(pending)


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text[:-1] if text.endswith("\r") else text


def _parse_block(
    block: list[str], first_line: int, lon_col: int, lat_col: int
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    xs = np.full(len(block), np.nan)
    ys = np.full(len(block), np.nan)
    errors: dict[int, str] = {}
    need = max(lon_col, lat_col) + 1
    for row, fields in enumerate(csv.reader(block)):
        if len(fields) < need:
            errors[row] = f"line {first_line + row}: expected at least {need} fields"
            continue
        for col, target, name in ((lon_col, xs, "lon"), (lat_col, ys, "lat")):
            try:
                target[row] = float(fields[col])
            except ValueError:
                errors[row] = f"line {first_line + row}: {name}: {fields[col]!r} is not a number"
                break
    return xs, ys, errors


def _pad(line: str, width: int) -> str:
    """``line`` with empty fields added so that the error columns stay aligned."""
    fields = next(csv.reader([line]), [])
    return line + "," * max(0, width - max(len(fields), 1))


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'
