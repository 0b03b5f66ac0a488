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
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from gridmap.errors import InvalidInputError
from gridmap.lookup.service import DivisionSnapshot, LookupService

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
        self._header = b""
        self._width = 2
        self._cols = (0, 1)

    def process(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield output CSV bytes for input CSV ``chunks`` (any chunk boundaries)."""
        blocks = _line_blocks(chunks, self.block_rows)
        first = next(blocks, None)
        if first is None or not first.lines[0].strip():
            raise InvalidInputError("CSV is empty: expected a header line with lon,lat")
        self._header = first.lines[0]
        header = next(csv.reader([_decode(self._header)]))
        self._cols = find_columns(header)
        self._width = len(header)
        yield self._header + b",grid_code,error\n"
        line_no = 2
        for block in _chain([first.without_first_line()], blocks):
            if block.maybe_blank:  # keep line numbers true when blank lines are dropped
                yield from self._answer_with_blanks(block.lines, line_no)
            elif block.lines:
                yield self._answer(block.lines, line_no, block.raw)
            line_no += len(block.lines)

    def _answer_with_blanks(self, block: list[bytes], first_line: int) -> Iterator[bytes]:
        run: list[bytes] = []
        start = first_line
        for offset, line in enumerate(block):
            if line.strip():
                if not run:
                    start = first_line + offset
                run.append(line)
            elif run:
                yield self._answer(run, start)
                run = []
        if run:
            yield self._answer(run, start)

    def _answer(self, lines: list[bytes], first_line: int, raw: bytes | None = None) -> bytes:
        """Output lines for ``lines`` (``raw``: the same lines joined, when at hand)."""
        parsed = _parse_fast(self._header, raw if raw is not None else b"\n".join(lines),
                             len(lines), self._cols)
        if parsed is None:  # something unusual in this block: parse it row by row
            xs, ys, errors = _parse_block([_decode(b) for b in lines], first_line, *self._cols)
        else:
            xs, ys, errors = parsed[0], parsed[1], {}
        result = self.service.locate(xs, ys, self.crs, self.as_of, self.snap_m)
        for row, message in result.errors.items():
            errors.setdefault(row, f"line {first_line + row}: {message}")
        suffixes = _suffix_table(result.snapshot)[result.index]
        for row, problem in errors.items():
            lines[row] = _pad(_decode(lines[row]), self._width).encode()
            suffixes[row] = b",," + _quote(problem).encode() + b"\n"
            self.report.bad.append({"line": first_line + row, "problem": problem})
        self._count(result.index, len(lines), len(errors), result.generation)
        return _interleave(lines, suffixes)

    def _count(self, index: np.ndarray, rows: int, bad: int, generation: int) -> None:
        located = int(np.count_nonzero(index >= 0))
        self.report.rows += rows
        self.report.located += located
        self.report.outside += rows - located - bad
        self.report.generation = generation


@dataclass
class _Block:
    """Complete lines of the input: joined (``raw``) and split, and whether any may be blank."""

    raw: bytes
    lines: list[bytes]
    maybe_blank: bool

    def without_first_line(self) -> _Block:
        """The block after its first line (the header)."""
        cut = len(self.lines[0]) + 1
        return _Block(self.raw[cut:], self.lines[1:], _may_have_blank_lines(self.raw[cut:]))


def _line_blocks(chunks: Iterable[bytes], block_rows: int) -> Iterator[_Block]:
    """Complete lines (without line ends) in blocks of about ``block_rows``.

    Each block says whether it may hold blank lines, found by substring tests on the
    block's bytes rather than per line.
    """
    pending = b""
    pieces: list[bytes] = []
    count = 0
    for chunk in chunks:
        data = pending + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            continue
        pieces.append(data[:cut])
        pending = data[cut + 1 :]
        count += data.count(b"\n", 0, cut) + 1
        if count >= block_rows:
            yield _split_block(b"\n".join(pieces))
            pieces, count = [], 0
    if pending:
        pieces.append(pending)
    if pieces:
        yield _split_block(b"\n".join(pieces))


def _split_block(raw: bytes) -> _Block:
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n")
    return _Block(raw, raw.split(b"\n"), _may_have_blank_lines(raw))


def _may_have_blank_lines(raw: bytes) -> bool:
    """True when a line may be empty or start with white space (then lines are checked).

    One vectorised pass over the bytes: substring tests for ``b"\\n\\n"`` and the like
    were a quarter of the CSV cost, since every line end is a candidate match.
    """
    if not raw or raw[:1] in (b"\n", b" ", b"\t") or raw.endswith(b"\n"):
        return True
    data = np.frombuffer(raw, dtype=np.uint8)
    after_line_end = data[np.flatnonzero(data == _NL) + 1]
    return bool(np.isin(after_line_end, _BLANK_STARTS).any())


_NL = ord("\n")
_BLANK_STARTS = np.array([ord("\n"), ord(" "), ord("\t")], dtype=np.uint8)


def _chain(head: list[_Block], rest: Iterator[_Block]) -> Iterator[_Block]:
    yield from head
    yield from rest


def _parse_fast(
    header: bytes, raw: bytes, rows: int, cols: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """lon/lat columns of ``rows`` lines via pyarrow's CSV reader; None when a row needs
    a closer look."""
    names = [f"c{i}" for i in range(len(next(csv.reader([_decode(header)]))))]
    lon, lat = names[cols[0]], names[cols[1]]
    try:
        table = pa_csv.read_csv(
            io.BytesIO(raw),
            read_options=pa_csv.ReadOptions(column_names=names),
            parse_options=pa_csv.ParseOptions(newlines_in_values=False),
            convert_options=pa_csv.ConvertOptions(
                include_columns=[lon, lat],
                column_types={lon: pa.float64(), lat: pa.float64()},
            ),
        )
    except (pa.ArrowInvalid, IndexError):
        return None
    if table.num_rows != rows or table.column(0).null_count or table.column(1).null_count:
        return None
    xs = table.column(0).to_numpy()
    ys = table.column(1).to_numpy()
    return np.asarray(xs, np.float64), np.asarray(ys, np.float64)


def _suffix_table(snapshot: DivisionSnapshot) -> np.ndarray:
    """``,CODE,`` and a line end per grid index, ``,,`` last (index -1): no row loop."""
    cached = _SUFFIXES.get(id(snapshot))
    if cached is None or cached[0] is not snapshot:
        codes = [f",{c},\n".encode() for c in snapshot.index.codes]
        cached = (snapshot, np.array([*codes, b",,\n"], dtype=object))
        _SUFFIXES.clear()
        _SUFFIXES[id(snapshot)] = cached
    return cached[1]


_SUFFIXES: dict[int, tuple[DivisionSnapshot, np.ndarray]] = {}


def _interleave(lines: list[bytes], suffixes: np.ndarray) -> bytes:
    """``line + suffix`` for every row, joined: one copy, no per-row objects."""
    parts = np.empty(2 * len(lines), dtype=object)
    parts[0::2] = lines
    parts[1::2] = suffixes
    return b"".join(parts.tolist())


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
