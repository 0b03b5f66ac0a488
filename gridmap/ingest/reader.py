"""Reading boundary files handed over by GIS staff into one clean, EPSG:4326 frame.

Formats (through pyogrio/GDAL): ESRI Shapefile (a ``.shp``, a folder holding one, or a
``.zip`` of it — macOS ``__MACOSX/`` and ``._*`` files ignored), GeoPackage (the layer
named by ``--layer`` or after the level), GeoJSON and FlatGeobuf. Every problem with
the *file* itself (corrupt zip, zip slip, missing ``.shx``/``.dbf``, wrong encoding,
no features, mixed geometry types, NaN coordinates, too big, no CRS, an unreadable
``.prj`` or a CRS PROJ cannot take to lon/lat, codes in a floating-point field that
cannot hold them) raises :class:`~gridmap.errors.InvalidInputError` naming the file;
problems with *features* are left to :mod:`gridmap.ingest.checks`. Which CRS a file is
read in (``--source-crs`` overrides the file's own, as ogr2ogr's ``-s_srs`` does) is
:mod:`gridmap.ingest.crs`'s concern, and which text encoding :mod:`gridmap.ingest.text`'s.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from gridmap.errors import InvalidInputError
from gridmap.ingest import shapefile
from gridmap.ingest.archive import is_zip, unpack
from gridmap.ingest.crs import STORAGE_CRS, choose_crs, datum_warnings
from gridmap.ingest.gcpause import gc_paused
from gridmap.ingest.text import (
    decode_shapefile_text,
    read_utf8_dataset,
    refuse_mojibake_names,
)
from gridmap.models.areas import CODE_LENGTHS, LEVEL_ORDER, Level

AREA_LEVELS = ("district", "street", "community", "grid")
IMPORT_LEVELS = (*AREA_LEVELS, "building", "facility", "worker")
LEVEL_PLURALS = {"district": "districts", "street": "streets", "community": "communities",
                 "grid": "grids", "building": "buildings", "facility": "facilities",
                 "worker": "workers"}  # fmt: skip
"""How a file, folder or layer holding one level is usually named besides the level."""
DEFAULT_MAX_BYTES = 1 << 30
# One feature with more vertices than this is refused: real grid boundaries have a few
# thousand; millions are an accident or an attack (every later check would crawl).
DEFAULT_MAX_VERTICES = 1_000_000
SUFFIXES = {".shp": "ESRI Shapefile", ".gpkg": "GPKG", ".geojson": "GeoJSON",
            ".json": "GeoJSON", ".fgb": "FlatGeobuf"}  # fmt: skip
FIELD_CANDIDATES = {
    "code": ("code", "dm", "代码", "编码", "grid_code", "bm", "编号", "工号"),
    "name": ("name", "mc", "名称", "name_zh", "姓名"),
    "parent": ("parent", "parent_code", "sjdm", "上级代码", "parentcode"),
    "address": ("address", "addr", "dz", "地址"),
    "floors": ("floors", "floor", "cs", "层数"),
    "use": ("use", "usage", "yt", "用途"),
    "state": ("state", "status", "zt", "状态"),
    "phone": ("phone", "tel", "dh", "电话", "联系电话", "手机", "手机号"),
    "role": ("role", "js", "角色", "岗位", "职务"),
    "grids": ("grids", "grid", "grid_code", "grid_codes", "wgdm", "网格", "网格代码"),
}
"""Field names tried (case-insensitive) when ``--code-field`` etc. are not given."""
LEVEL_ROLES = {
    **{level: ("code", "name", "parent") for level in AREA_LEVELS},
    "building": ("code", "address", "floors", "use"),
    "facility": ("code", "name", "state"),
    "worker": ("code", "name", "phone", "role", "grids"),
}
"""The fields each level reads (beyond ``code``, all optional unless the checks say so)."""

Progress = Callable[[float, str], None]


def no_progress(_fraction: float, _message: str) -> None:
    """A :data:`Progress` that reports nowhere."""


@dataclass
class ReadOptions:
    """How to read a file: field mapping, encoding, CRS, layer, limits."""

    code_field: str | None = None
    name_field: str | None = None
    parent_field: str | None = None
    encoding: str | None = None
    source_crs: str | None = None
    layer: str | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    max_vertices: int = DEFAULT_MAX_VERTICES

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ReadOptions:
        """Options from a JSON-able dict (unknown keys ignored)."""
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class LayerRead:
    """What was read: features (code, name, parent_code, geometry in EPSG:4326) and how."""

    frame: gpd.GeoDataFrame
    source: str
    driver: str
    crs_used: str
    crs_note: str
    encoding_used: str
    fields: dict[str, str | None]
    z_dropped: list[int] = field(default_factory=list)
    m_dropped: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    wkb: np.ndarray | None = None
    """Per feature, its 2D little-endian WKB as read, where the reader had it for free
    (None entries elsewhere); None when the geometry was reprojected."""
    crs_warnings: list[str] = field(default_factory=list)
    """Those of ``warnings`` about the CRS (the others are about text encoding)."""


@gc_paused()  # CPU work on one file: no database, no lock waits
def read_layer(
    path: Path | str,
    level: str,
    options: ReadOptions | None = None,
    progress: Progress | None = None,
) -> LayerRead:
    """Read one layer of areas from ``path`` and reproject it to EPSG:4326.

    Parameters
    ----------
    path : pathlib.Path or str
        A ``.shp``, a folder with one shapefile, a ``.zip`` of one, a ``.gpkg``,
        ``.geojson`` or ``.fgb``.
    level : str
        The level being imported (chooses the shapefile in a folder holding several).
    options : ReadOptions, optional
        Field mapping, encoding, source CRS, GeoPackage layer, size limit.
    progress : callable, optional
        Called with (fraction, message) as reading goes on.

    Returns
    -------
    LayerRead
        The features in file order (index = feature index) and what was assumed.

    Raises
    ------
    InvalidInputError
        The file cannot be read as asked; the message names the file and the problem.
    """
    options = options or ReadOptions()
    report = progress or (lambda _f, _m: None)
    path = Path(path)
    _check_size(path, options.max_bytes)
    with tempfile.TemporaryDirectory(prefix="gridmap-import-") as tmp:
        target = unpack(path, Path(tmp), options.max_bytes) if is_zip(path) else path
        dataset, named_by_layer = _find_dataset(target, level, path, options.layer)
        if named_by_layer:  # --layer named the file; it names no layer inside it
            options = replace(options, layer=None)
        report(0.1, f"reading {dataset.name}")
        return _read_dataset(dataset, level, options, path.name, report)


# --- files ---------------------------------------------------------------------------------


def _check_size(path: Path, max_bytes: int) -> None:
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file or folder", details=[{"file": str(path)}])
    size = (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )
    if size == 0 and path.is_file():
        raise InvalidInputError(
            f"{path.name}: the file is empty (0 bytes); was the upload or copy cut short?",
            details=[{"file": path.name, "problem": "empty"}],
        )
    if size > max_bytes:
        raise InvalidInputError(
            f"{path.name}: {size:,} bytes is over the import size limit of {max_bytes:,} bytes",
            details=[{"file": path.name, "problem": "too_large", "bytes": size}],
        )


def _find_dataset(target: Path, level: str, original: Path, asked: str | None
                  ) -> tuple[Path, bool]:  # fmt: skip
    """The dataset to read in ``target`` (a file, or a folder or unpacked zip), and
    whether ``asked`` (``--layer``) chose it among several, by file name with or
    without its suffix (case-insensitive when that is unambiguous)."""
    if target.is_file():
        if target.suffix.lower() not in SUFFIXES:
            raise InvalidInputError(
                f"{original.name}: unknown format {target.suffix!r}; expected one of "
                f"{', '.join(sorted({*SUFFIXES, '.zip'}))}"
            )
        return target, False
    found = sorted(p for p in target.rglob("*")
                   if p.suffix.lower() in SUFFIXES and not _mac_metadata(p.relative_to(target)))
    if not found:
        raise InvalidInputError(f"{original.name}: holds no shapefile, GeoPackage or GeoJSON")
    if len(found) == 1:
        return found[0], False
    names = ", ".join(p.name for p in found)
    if asked is not None:
        chosen = ([p for p in found if asked in (p.stem, p.name)]
                  or [p for p in found if asked.lower() in (p.stem.lower(), p.name.lower())])
        if len(chosen) == 1:
            return chosen[0], True
        raise InvalidInputError(
            f"{original.name}: holds {'several datasets' if chosen else 'no dataset'} named "
            f"{asked!r} (--layer); its datasets are {names}",
            details=[{"file": original.name, "problem": "no_such_layer",
                      "layers": [p.name for p in found]}],
        )  # fmt: skip
    named = [p for p in found if p.stem.lower() in (level, LEVEL_PLURALS[level])]
    if len(named) == 1:
        return named[0], False
    raise InvalidInputError(
        f"{original.name}: holds several datasets ({names}); name the one to import with "
        f"--layer (its file name without the suffix, e.g. --layer {found[0].stem}), or call "
        f"the {level} file {level}.shp",
        details=[{"file": original.name, "problem": "several_datasets",
                  "layers": [p.name for p in found]}],
    )  # fmt: skip


def _mac_metadata(path: Path) -> bool:
    """Whether ``path`` is what macOS adds to a zip or a copied folder: ``__MACOSX/``
    and ``._name`` AppleDouble files (resource forks, not data)."""
    return "__MACOSX" in path.parts or path.name.startswith("._")


def _sidecar(shp: Path, suffix: str) -> Path | None:
    for candidate in shp.parent.iterdir():
        if candidate.stem == shp.stem and candidate.suffix.lower() == suffix:
            return candidate
    return None


def _check_shapefile_parts(shp: Path, label: str) -> None:
    missing = [s for s in (".shx", ".dbf") if _sidecar(shp, s) is None]
    if missing:
        raise InvalidInputError(
            f"{label}: shapefile {shp.name} has no {' or '.join(missing)} file beside it; "
            "give all its parts (.shp, .shx, .dbf, .prj, .cpg) side by side, or one .zip "
            "holding them (an upload takes one file: the .zip)",
            details=[{"file": shp.name, "problem": "missing_part", "missing": missing}],
        )


def _check_shx_matches_shp(shp: Path, label: str) -> shapefile.Records:
    """The ``.shp``'s records; refuse a ``.shx`` (or ``.dbf``) that does not index them.

    Hand-written because GDAL trusts the index: a lying .shx silently duplicates or
    drops features. The .shp records are contiguous, so the index is right when its
    offsets chain from the first record to the end of the file by the lengths written
    in the .shp's own record headers (vectorised: only those headers are read).
    """
    shx = _sidecar(shp, ".shx")
    dbf = _sidecar(shp, ".dbf")
    assert shx is not None and dbf is not None  # checked by _check_shapefile_parts
    listed = shapefile.shx_offsets(shx)
    dbf_head = dbf.read_bytes()[:8]
    rows = struct.unpack_from("<I", dbf_head, 4)[0] if len(dbf_head) == 8 else -1
    records = shapefile.index_records(shp, listed)
    if records is None or rows != records.start.size:
        raise InvalidInputError(
            f"{label}: {shx.name} does not match {shp.name} ({listed.size} index entries, "
            f"{shapefile.count_records(shp)} shapes, {rows} attribute rows); the file set is "
            "inconsistent — export it again from the GIS",
            details=[{"file": shx.name, "problem": "index_mismatch"}],
        )
    return records


# --- reading -------------------------------------------------------------------------------


@dataclass
class _Raw:
    """A dataset as GDAL (or the shapefile reader) handed it over, and how it was read."""

    frame: gpd.GeoDataFrame
    label: str
    encoding: str
    notes: list[str] = field(default_factory=list)
    wkb: np.ndarray | None = None


def _read_dataset(
    dataset: Path, level: str, options: ReadOptions, label: str, report: Progress
) -> LayerRead:
    driver = SUFFIXES[dataset.suffix.lower()]
    read = _read_raw(dataset, driver, level, options, label)
    raw, label = read.frame, read.label
    if len(raw) == 0:
        raise InvalidInputError(f"{label}: holds no features",
                                details=[{"file": label, "problem": "no_features"}])  # fmt: skip
    report(0.5, f"read {len(raw):,} features")
    mapping = _map_fields(list(raw.columns.drop(raw.geometry.name)), level, options, label)
    _check_vertices(raw.geometry.to_numpy(), options.max_vertices, label)
    refuse_mojibake_names(raw, mapping, read.encoding, label)
    notes = read.notes
    geoms, z_dropped, m_dropped = _clean_geometry(
        np.asarray(raw.geometry.to_numpy(), dtype=object), label
    )
    file_crs = getattr(raw, "crs", None)
    prj_problem = _unreadable_prj(dataset) if file_crs is None and driver == "ESRI Shapefile" \
        else None  # fmt: skip
    crs, shown, note = choose_crs(file_crs, prj_problem, options.source_crs, geoms, label)
    frame = gpd.GeoDataFrame(_attributes(raw, level, mapping, label),
                             geometry=gpd.GeoSeries(geoms, crs=crs))  # fmt: skip
    wkb = read.wkb
    if crs != CRS.from_user_input(STORAGE_CRS):
        frame = frame.to_crs(STORAGE_CRS)
        wkb = None
        report(0.8, f"reprojected from {shown}")
    frame = frame.set_crs(STORAGE_CRS, allow_override=True)
    _check_range(frame.geometry.to_numpy(), label)
    crs_warnings = datum_warnings(crs, shown, frame.total_bounds)
    if level in AREA_LEVELS and level != "district" and not mapping["parent"]:
        mapping = {**mapping, "parent": PARENT_BY_PREFIX}
    return LayerRead(frame, label, driver, shown, note, read.encoding, mapping, z_dropped,
                     m_dropped, [*notes, *crs_warnings], wkb, crs_warnings)  # fmt: skip


def _read_raw(dataset: Path, driver: str, level: str, options: ReadOptions, label: str) -> _Raw:
    """Read the dataset; every way GDAL can fail becomes InvalidInputError. A GeoPackage
    layer chosen among several is named in the label."""
    try:
        if driver == "ESRI Shapefile":
            frame, encoding, wkb = _read_shapefile(dataset, options, label)
            return _Raw(frame, label, encoding, wkb=wkb)
        layer = None
        if driver == "GPKG":
            layer, layers = choose_layer(dataset, level, options.layer, label)
            label = f"{label} (layer {layer})" if len(layers) > 1 else label
        frame, encoding, notes = read_utf8_dataset(dataset, driver, layer, options.encoding,
                                                    label)  # fmt: skip
        return _Raw(frame, label, encoding, notes)
    except pyogrio.errors.DataSourceError as exc:
        raise InvalidInputError(f"{label}: cannot read {dataset.name}: {exc}") from None
    except pyogrio.errors.DataLayerError as exc:
        raise InvalidInputError(f"{label}: layer problem in {dataset.name}: {exc}") from None
    except InvalidInputError:
        raise
    except Exception as exc:  # GDAL raises a few of its own kinds on damaged files
        raise InvalidInputError(f"{label}: {dataset.name} is damaged: {exc}") from None


MAX_LATITUDE = 85.0511287798066
"""Web Mercator's edge: the map (``geom_3857``) cannot draw beyond it."""


def _check_range(geoms: np.ndarray, label: str) -> None:
    """InvalidInputError naming the features (in EPSG:4326) with a longitude outside
    ±180° or a latitude outside Web Mercator's ±85.05°: they cannot be stored and drawn
    consistently (PROJ wraps such longitudes in the map copy)."""
    box = shapely.bounds(geoms)
    outside = np.flatnonzero((box[:, 0] < -180) | (box[:, 2] > 180) |
                             (box[:, 1] < -MAX_LATITUDE) | (box[:, 3] > MAX_LATITUDE))
    if outside.size:
        features = outside[:10].tolist()
        raise InvalidInputError(
            f"{label}: feature(s) {features} lie outside longitude -180..180 or latitude "
            f"-{MAX_LATITUDE:.2f}..{MAX_LATITUDE:.2f} (after reprojection to EPSG:4326); "
            "check the file's CRS",
            details=[{"file": label, "problem": "out_of_range", "feature": int(i)}
                     for i in outside[:50]],
        )  # fmt: skip


def _check_vertices(geoms: Any, limit: int, label: str) -> None:
    """InvalidInputError naming the first feature with more than ``limit`` vertices."""
    counts = shapely.get_num_coordinates(np.asarray(geoms, dtype=object))
    over = np.flatnonzero(counts > limit)
    if over.size:
        i = int(over[0])
        raise InvalidInputError(
            f"{label}: feature {i} has {int(counts[i]):,} vertices, over the limit of "
            f"{limit:,}; simplify it (e.g. ogr2ogr -simplify) before importing",
            details=[{"feature": i, "problem": "too_many_vertices", "vertices": int(counts[i])}],
        )


def _read_shapefile(dataset: Path, options: ReadOptions, label: str
                    ) -> tuple[gpd.GeoDataFrame, str, np.ndarray]:  # fmt: skip
    """A shapefile's features with text decoded in the right encoding, that encoding,
    and the WKB :func:`gridmap.ingest.shapefile.read_polygons` took from the file.

    GDAL hands text over in the file's own bytes and the reader decodes it, so that a
    wrong encoding is detected instead of silently turned into mojibake.
    """
    _check_shapefile_parts(dataset, label)
    records = _check_shx_matches_shp(dataset, label)
    meta, table = shapefile.read_attributes(dataset)
    try:
        geoms, wkb = shapefile.read_polygons(dataset, records)
    except shapefile.DamagedRecord as exc:
        raise InvalidInputError(
            f"{label}: {dataset.name} is damaged: {exc}",
            details=[{"file": dataset.name, "feature": exc.index, "problem": exc.problem}],
        ) from None
    cpg = _sidecar(dataset, ".cpg")
    declared = options.encoding or (cpg.read_text(errors="replace").strip() if cpg else None)
    table, encoding = decode_shapefile_text(table, declared, dataset.name, label)
    frame = table.to_pandas()
    crs = meta.get("crs")
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, index=frame.index, crs=crs)
                            ), encoding, wkb  # fmt: skip


def choose_layer(
    dataset: Path, level: str, asked: str | None, label: str
) -> tuple[str | None, list[str]]:
    """The layer of a multi-layer file to read for ``level``, and all its layers.

    ``asked`` (``--layer``) if given; else the only layer; else the one named after
    the level (``grid`` or ``grids``, case-insensitive). A file with several layers
    and none so named is refused, listing them: reading the first would import
    whatever happens to come first (e.g. the city outline as grids).
    """
    layers = [str(name) for name in pyogrio.list_layers(dataset)[:, 0]]
    if asked is not None and asked not in layers:
        raise InvalidInputError(
            f"{label}: has no layer {asked!r} (--layer); its layers are {', '.join(layers)}",
            details=[{"file": label, "problem": "no_such_layer", "layers": layers}],
        )
    if asked is not None or len(layers) <= 1:
        return asked if asked is not None else next(iter(layers), None), layers
    named = [name for name in layers if name.lower() in (level, LEVEL_PLURALS[level])]
    if len(named) == 1:
        return named[0], layers
    raise InvalidInputError(
        f"{label}: holds {len(layers)} layers ({', '.join(layers)}) and "
        f"{'several' if named else 'none'} named {level} or {LEVEL_PLURALS[level]}; "
        "name the one to import with --layer",
        details=[{"file": label, "problem": "several_layers", "layers": layers}],
    )


def _attributes(raw: pd.DataFrame, level: str, mapping: dict[str, str | None], label: str
                ) -> dict[str, pd.Series]:  # fmt: skip
    """The columns of the read frame: areas get code, name, parent_code; others their roles.

    Plain object columns: the checks take them as NumPy arrays many times over, which
    costs a conversion each time from Arrow-backed strings.
    """
    if level in AREA_LEVELS:
        codes = column_texts(raw, mapping["code"], "code", label)
        columns = {"code": codes, "name": _texts(raw, mapping["name"]),
                   "parent_code": column_texts(raw, mapping["parent"], "parent", label)
                   if mapping["parent"] else _parents_by_prefix(codes, level)}  # fmt: skip
    else:
        columns = {role: column_texts(raw, mapping.get(role), role, label)
                   for role in LEVEL_ROLES[level]}  # fmt: skip
    return {k: pd.Series(v, index=raw.index, dtype=object) for k, v in columns.items()}


PARENT_BY_PREFIX = "(the code's prefix)"
"""What the report names as the parent field when parents come from the codes."""


def _parents_by_prefix(codes: np.ndarray, level: str) -> np.ndarray:
    """With no parent field, each street, community or grid code's parent is its own
    prefix (the codes nest: 500103 → 500103001 → 500103001001 → 500103001001001); a
    district's parent (its city) is not a prefix, so districts get none."""
    out = np.full(len(codes), None, dtype=object)
    depth = Level(level).depth
    if level == "district":
        return out
    parent, own = CODE_LENGTHS[LEVEL_ORDER[depth - 1]], CODE_LENGTHS[Level(level)]
    for i, code in enumerate(codes):
        if isinstance(code, str) and len(code) == own and code.isascii() and code.isdigit():
            out[i] = code[:parent]
    return out


def _map_fields(
    columns: list[str], level: str, options: ReadOptions, label: str
) -> dict[str, str | None]:
    given: dict[str, str | None] = {role: None for role in LEVEL_ROLES[level]}
    given.update(code=options.code_field, name=options.name_field)
    if level in AREA_LEVELS:
        given["parent"] = options.parent_field
    lowered = {c.lower(): c for c in columns}
    mapping: dict[str, str | None] = {}
    for role, asked in given.items():
        if asked is not None:
            if asked not in columns and asked.lower() not in lowered:
                raise InvalidInputError(
                    f"{label}: field {asked!r} (--{role}-field) not found; fields are {columns}"
                )
            mapping[role] = lowered.get(asked.lower(), asked)
            continue
        mapping[role] = next((lowered[c] for c in FIELD_CANDIDATES[role] if c in lowered), None)
    if mapping["code"] is None:
        raise InvalidInputError(
            f"{label}: no code field found among {columns}; name it with --code-field",
            details=[{"file": label, "problem": "no_code_field"}],
        )
    if level in AREA_LEVELS and mapping["name"] is None:
        raise InvalidInputError(f"{label}: no name field found among {columns}; use --name-field")
    return mapping


CODE_ROLES = frozenset({"code", "parent", "grids"})
"""Roles holding codes: numbers there must be exact integers."""


def column_texts(raw: pd.DataFrame, column: str | None, role: str, label: str) -> np.ndarray:
    """The values of ``column`` (read for ``role``) as stripped text; missing or blank
    values (None, NaN, '') as None; all None when there is no such column."""
    if column is None:
        return np.full(len(raw), None, dtype=object)
    if role in CODE_ROLES:
        return code_texts(raw[column], column, label)
    return value_texts(raw[column])


def code_texts(values: pd.Series, field: str, label: str) -> np.ndarray:
    """Codes as stripped text (see :func:`value_texts`), refusing a floating-point field
    that cannot hold them exactly.

    Raises
    ------
    InvalidInputError
        ``field`` is stored as floating point (a DBF numeric field with decimals, a
        GeoPackage REAL) and holds values beyond 2**53 (2**24 for single precision):
        there a double skips integers, so 18-digit codes have already collapsed into
        one another and no reading can tell them apart again.
    """
    if pd.api.types.is_float_dtype(values.dtype):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        exact = 2.0 ** (np.finfo(values.dtype).nmant + 1)
        beyond = np.flatnonzero(np.abs(numbers) >= exact)  # NaN is never beyond
        if beyond.size:
            i = int(beyond[0])
            raise InvalidInputError(
                f"{label}: field {field!r} is stored as floating point; codes longer than "
                f"15 digits cannot be represented (feature {i} reads {numbers[i]:.0f}, "
                "rounded); store the field as text",
                details=[{"file": label, "field": field, "feature": i, "problem": "float_code"}],
            )
    return value_texts(values)


def value_texts(values: pd.Series) -> np.ndarray:
    """Values as stripped text in an object array; None for missing or blank values.

    Numbers read from floating-point fields lose the '.0' of whole values
    (500103001001001.0 → '500103001001001'), as the GIS showed them.
    """
    if pd.api.types.is_float_dtype(values.dtype):
        numbers = values.to_numpy(dtype=float, na_value=np.nan).tolist()
        return np.array([None if v != v else str(int(v)) if v.is_integer() else str(v)
                         for v in numbers], dtype=object)  # fmt: skip
    text = _stripped(values)
    text[text == ""] = None
    return text


def _texts(raw: pd.DataFrame, column: str | None) -> np.ndarray:
    """Text values, stripped; missing → ''."""
    if column is None:
        return np.full(len(raw), "", dtype=object)
    text = _stripped(raw[column])
    text[pd.isna(text)] = ""
    return text


def _stripped(series: pd.Series) -> np.ndarray:
    """Values as stripped text in an object array, missing values as None."""
    if not pd.api.types.is_string_dtype(series.dtype) or series.dtype == object:
        values = pd.Series(series.to_numpy(dtype=object), dtype=object)
        missing = values.isna()
        series = values.where(missing, values.astype(str)).astype("str")
    return series.str.strip().to_numpy(dtype=object, na_value=None)


_FAMILY = {0: "point", 4: "point", 1: "line", 2: "line", 5: "line", 3: "polygon", 6: "polygon",
           7: "collection"}  # fmt: skip


def _clean_geometry(
    geoms: np.ndarray, label: str
) -> tuple[np.ndarray, list[int], list[int]]:
    """Refuse mixed types and non-finite coordinates; drop Z and M (their indexes kept)."""
    present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    types = np.unique(shapely.get_type_id(geoms[present]))
    families = {_FAMILY.get(int(t), "other") for t in types}
    if len(families) > 1:
        raise InvalidInputError(
            f"{label}: mixed geometry types ({', '.join(sorted(families))}); "
            "one layer must hold one kind of geometry",
            details=[{"file": label, "problem": "mixed_geometry", "types": sorted(families)}],
        )
    if not np.isfinite(shapely.get_coordinates(geoms)).all():
        coords, owner = shapely.get_coordinates(geoms, return_index=True)
        features = sorted(set(owner[~np.isfinite(coords).all(axis=1)].tolist()))
        raise InvalidInputError(
            f"{label}: NaN or infinite coordinates in feature(s) {features[:10]}",
            details=[{"file": label, "problem": "non_finite", "feature": i} for i in features[:50]],
        )
    has_z = np.asarray(shapely.has_z(geoms), dtype=bool) & present
    has_m = np.asarray(shapely.has_m(geoms), dtype=bool) & present
    z_dropped, m_dropped = np.flatnonzero(has_z).tolist(), np.flatnonzero(has_m).tolist()
    if z_dropped or m_dropped:
        geoms = shapely.force_2d(geoms)
    return geoms, z_dropped, m_dropped


def _unreadable_prj(shp: Path) -> str | None:
    """Why a shapefile's ``.prj`` gave no CRS; None when there is no ``.prj``."""
    prj = _sidecar(shp, ".prj")
    if prj is None:
        return None
    text = prj.read_text(errors="replace").strip()
    if not text:
        return f"{prj.name} is empty"
    try:
        CRS.from_user_input(text)
    except CRSError as exc:
        return f"{prj.name}: {exc}"
    return f"GDAL cannot interpret {prj.name}"
