"""Text encodings of attribute tables: which one a file is in, decoding it, and refusing
mojibake (GBK read as Latin-1, UTF-8 declared as GBK) before it reaches the map."""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio

from gridmap.errors import InvalidInputError

_UTF8_FORMATS = {"GeoJSON": "GeoJSON text must be UTF-8 (RFC 7946)",
                 "GPKG": "GeoPackage text must be UTF-8",
                 "FlatGeobuf": "FlatGeobuf text must be UTF-8"}  # fmt: skip


def read_utf8_dataset(
    dataset: Path, driver: str, layer: str | None, asked: str | None, label: str
) -> tuple[gpd.GeoDataFrame, str, list[str]]:
    """A GeoJSON, GeoPackage or FlatGeobuf, its text encoding and warnings.

    These formats hold UTF-8 by definition, and are read so (Arrow batches: about 2×
    faster than GDAL's row-by-row path). A file that is not valid UTF-8 is refused,
    unless ``--encoding`` names another encoding: then pyogrio's row-by-row path
    decodes it with that one (Arrow cannot).
    """
    try:
        raw = pyogrio.read_dataframe(dataset, layer=layer, use_arrow=True)
        utf8 = is_utf8(raw)
    except UnicodeDecodeError:  # field names are decoded while reading
        raw, utf8 = None, False
    encoding = normalise_encoding(asked) if asked else "UTF-8"
    if utf8 and raw is not None:
        ignored = [] if encoding == "UTF-8" else [
            f"--encoding {asked} ignored: the text of {dataset.name} is valid UTF-8, "
            f"as {driver} requires"]  # fmt: skip
        return raw, "UTF-8", ignored
    if encoding == "UTF-8":
        raise InvalidInputError(
            f"{label}: text in {dataset.name} is not valid UTF-8 ({_UTF8_FORMATS[driver]}); "
            "save it again as UTF-8, or pass --encoding (e.g. --encoding GBK) to read it as "
            "it is", details=[{"file": dataset.name, "problem": "encoding", "encoding": "UTF-8"}],
        )  # fmt: skip
    try:
        return pyogrio.read_dataframe(dataset, layer=layer, encoding=encoding), encoding, []
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"{label}: text in {dataset.name} is neither UTF-8 nor {encoding}; pass the "
            "encoding it was saved in with --encoding",
            details=[{"file": dataset.name, "problem": "encoding", "encoding": encoding}],
        ) from None


def is_utf8(raw: pd.DataFrame) -> bool:
    """Whether every Arrow-backed text column holds valid UTF-8 (GDAL passes bytes on
    unchecked; pandas would fail on them later, far from the file)."""
    for name in raw.columns:
        column = raw[name]
        if name == raw.geometry.name or not pd.api.types.is_string_dtype(column.dtype) \
                or column.dtype == object:  # fmt: skip
            continue
        try:
            pa.array(column).validate(full=True)
        except pa.ArrowInvalid:
            return False
    return True


def decode_shapefile_text(table: pa.Table, declared: str | None, filename: str, label: str
                          ) -> tuple[pa.Table, str]:  # fmt: skip
    """Decode a shapefile's raw text columns with the right encoding; refuse mojibake.

    ``declared``: ``--encoding`` or the ``.cpg``'s text, else None (guessed). Only
    non-ASCII values are touched (codes are ASCII), each distinct value once; finding
    them and putting the decoded values back is done by Arrow kernels.
    """
    foreign: dict[str, tuple[pa.Array, pa.Array]] = {}
    for name in table.column_names:
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        values = column.combine_chunks().cast(pa.binary())  # not UTF-8 yet
        non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(column.combine_chunks()), True))
        if pc.any(non_ascii).as_py():
            foreign[name] = (values, pc.unique(pc.filter(values, non_ascii)))
    blobs = [b for _, distinct in foreign.values() for b in distinct.to_pylist()]
    encoding = normalise_encoding(declared) if declared else guess_encoding(blobs)
    refuse_mojibake(blobs, encoding, label, filename, declared is not None)
    for name, (values, distinct) in foreign.items():
        texts = _decode_all([b.decode("latin1") for b in distinct.to_pylist()], encoding)
        decoded = pa.array([t.encode("utf-8") for t in texts], type=pa.binary())
        slot = pc.index_in(values, value_set=distinct)
        replaced = pc.if_else(pc.is_null(slot), values, pc.take(decoded, slot))
        table = table.set_column(table.column_names.index(name), name,
                                 replaced.cast(pa.large_string()))  # fmt: skip
    # DBF field names are in the same encoding as the values (e.g. 地址 in GBK).
    table = table.rename_columns([_decode_name(c, encoding) for c in table.column_names])
    return table, encoding


# Encodings in which byte 0 is never part of a longer character: values can be joined
# with NUL, decoded in one call and split again (DBF text holds no NUL).
_NUL_SAFE = {"UTF-8", "GBK", "GB18030", "CP1252", "LATIN-1", "ISO-8859-1", "BIG5", "ASCII"}


def _decode_all(texts: list[str], encoding: str) -> list[str]:
    """Latin-1-read texts decoded with ``encoding`` (already known to succeed)."""
    if encoding in _NUL_SAFE and not any("\x00" in t for t in texts):
        parts = "\x00".join(texts).encode("latin1").decode(encoding).split("\x00")
        if len(parts) == len(texts):
            return parts
    return [t.encode("latin1").decode(encoding) for t in texts]


def _decode_name(name: str, encoding: str) -> str:
    try:
        return name.encode("latin1").decode(encoding) if not name.isascii() else name
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name


_MOJIBAKE = re.compile("[\u00c0-\u00ff]{2,}")
"""Runs of Latin-1 supplement letters: what GBK or UTF-8 bytes look like read as Latin-1."""


def refuse_mojibake_names(raw: pd.DataFrame, mapping: dict[str, str | None], encoding: str,
                           label: str) -> None:  # fmt: skip
    """Refuse names that decoded without error but look like mojibake (e.g. GBK read as
    Latin-1): published, they would garble every name on the map."""
    column = mapping.get("name") or mapping.get("address")
    if column is None or column not in raw.columns:
        return
    values = raw[column]
    if pd.api.types.is_numeric_dtype(values.dtype):
        return
    suspect = values[values.astype("str").str.contains(_MOJIBAKE.pattern, regex=True)
                     .fillna(False).astype(bool)]  # fmt: skip
    if suspect.empty or len(suspect) < max(1, len(values) // 100):
        return
    raise InvalidInputError(
        f"{label}: {len(suspect):,} of {len(values):,} names in field {column!r} look like "
        f"mojibake (e.g. feature #{suspect.index[0]} {suspect.iloc[0]!r}, read as {encoding}): "
        "Chinese text in another encoding? try --encoding GBK or --encoding UTF-8",
        details=[{"file": label, "field": column, "index": int(suspect.index[0]),
                  "problem": "encoding", "encoding": encoding}],
    )  # fmt: skip


def normalise_encoding(name: str) -> str:
    """``name`` as Python knows it (cp936 → GBK, utf8 → UTF-8); unknown names refused."""
    upper = name.upper().replace("_", "-")
    aliases = {"UTF8": "UTF-8", "936": "GBK", "CP936": "GBK", "GB2312": "GBK", "65001": "UTF-8",
               "ANSI 936": "GBK", "GB18030": "GB18030", "1252": "CP1252"}  # fmt: skip
    name = aliases.get(upper, upper)
    try:
        "".encode(name)
    except LookupError:
        raise InvalidInputError(f"unknown text encoding {name!r}; try UTF-8 or GBK") from None
    return name


def guess_encoding(blobs: list[bytes]) -> str:
    """No .cpg and no --encoding: UTF-8 if every string is valid UTF-8, else GBK."""
    try:
        for blob in blobs:
            blob.decode("utf-8")
    except UnicodeDecodeError:
        return "GBK"
    return "UTF-8"


def refuse_mojibake(
    blobs: list[bytes], encoding: str, label: str, filename: str, declared: bool,
    *, fix: str = " (or fix the .cpg)",
) -> None:
    """Refuse text that is not valid in ``encoding``, or, when ``encoding`` was declared
    (a .cpg, ``--encoding``), non-ASCII text that is valid UTF-8 although another
    encoding was declared: read that way it would be mojibake. ``fix``: what else
    the message suggests besides ``--encoding UTF-8``."""
    non_ascii = [b for b in blobs if not b.isascii()]
    for blob in non_ascii:
        try:
            blob.decode(encoding)
        except UnicodeDecodeError:
            other = "GBK" if encoding == "UTF-8" else "UTF-8"
            raise InvalidInputError(
                f"{label}: text in {filename} is not valid {encoding} (e.g. {blob[:24]!r}); "
                f"wrong encoding? try --encoding {other}",
                details=[{"file": filename, "problem": "encoding", "encoding": encoding}],
            ) from None
    if declared and encoding != "UTF-8" and non_ascii:
        # Text that is valid UTF-8 with non-ASCII characters is UTF-8: read as GBK it
        # would be mojibake (the reverse, GBK bytes that happen to be valid UTF-8, is rare).
        try:
            for blob in non_ascii:
                blob.decode("utf-8")
        except UnicodeDecodeError:
            return
        raise InvalidInputError(
            f"{label}: text in {filename} is UTF-8 but was declared {encoding}; reading it "
            f"that way would garble the names — pass --encoding UTF-8{fix}",
            details=[{"file": filename, "problem": "encoding", "encoding": encoding}],
        )
