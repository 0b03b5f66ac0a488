"""Exporting layers (areas of a level, buildings, facilities) as GeoJSON, zipped
shapefile (GBK or UTF-8) or GeoPackage, filtered by bbox and generation.

Personal data (ID numbers, phones, names of residents and workers) is never exported:
only the columns listed in :data:`EXPORT_COLUMNS` leave the database.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import psycopg
import pyogrio
import shapely
from psycopg import sql

from gridmap.errors import InvalidInputError
from gridmap.generations import valid_in_sql
from gridmap.ingest.reader import AREA_LEVELS

FORMATS = {"geojson": ("GeoJSON", ".geojson", "application/geo+json"),
           "shapefile": ("ESRI Shapefile", ".zip", "application/zip"),
           "gpkg": ("GPKG", ".gpkg", "application/geopackage+sqlite3")}  # fmt: skip
EXPORT_COLUMNS = {
    "area": ("code", "name", "parent_code", "level", "generation_low", "generation_high"),
    "building": ("code", "address", "floors", "use", "grid_code"),
    "facility": ("code", "major_code", "minor_code", "name", "state", "grid_code",
                 "owner_department_code", "maintainer_department_code"),
}  # fmt: skip
_SHAPEFILE_NAMES = {"parent_code": "PARENT", "generation_low": "GEN_LOW",
                    "generation_high": "GEN_HIGH", "grid_code": "GRID", "major_code": "MAJOR",
                    "minor_code": "MINOR", "owner_department_code": "OWNER",
                    "maintainer_department_code": "MAINTAINER"}  # fmt: skip
EXPORT_LEVELS = (*AREA_LEVELS, "building", "facility")
_INTEGER_COLUMNS = frozenset({"generation_low", "generation_high", "floors"})


def read_export_frame(
    conn: psycopg.Connection,
    level: str,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    generation: int | None = None,
    scopes: list[str] | None = None,
) -> gpd.GeoDataFrame:
    """The rows of ``level`` (areas valid in ``generation``, default active) in ``bbox``.

    ``scopes``: code ``LIKE`` patterns of the caller's area (None: everything).
    """
    if level not in EXPORT_LEVELS:
        raise InvalidInputError(
            f"level {level!r} cannot be exported; choose one of {', '.join(EXPORT_LEVELS)}"
            + (" (workers are personal data)" if level == "worker" else ""),
            details=[{"field": "level", "value": level}],
        )
    kind = "area" if level in AREA_LEVELS else level
    if generation is not None and kind != "area":
        raise InvalidInputError(
            f"{level} layers have no generations (only area levels do): drop the generation "
            "filter", details=[{"field": "generation", "value": generation}])  # fmt: skip
    table = {"area": "areas", "building": "buildings", "facility": "facilities"}[kind]
    columns = EXPORT_COLUMNS[kind]
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: dict[str, object] = {"level": level}
    if kind == "area":
        params["g"] = _generation(conn, generation)
        where.append(sql.SQL("level = %(level)s AND " + valid_in_sql("%(g)s")))
    if bbox is not None:
        _check_bbox(bbox)
        params.update(zip(("x0", "y0", "x1", "y1"), bbox, strict=True))
        where.append(sql.SQL("geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326)"))
    if scopes is not None:
        params["scopes"] = scopes
        where.append(sql.SQL("{} LIKE ANY(%(scopes)s)").format(
            sql.Identifier("code" if kind == "area" else "grid_code")))
    query = sql.SQL("SELECT {}, ST_AsBinary(geom) FROM {} WHERE {} ORDER BY code").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table),
        sql.SQL(" AND ").join(where),
    )  # fmt: skip
    rows = conn.execute(query, params).fetchall()
    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    geoms = shapely.from_wkb([bytes(r[-1]) for r in rows]) if rows else []
    frame = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"))
    for column in _INTEGER_COLUMNS.intersection(columns):
        # Nullable integers: with a NULL among them, plain pandas makes the column float
        # (generation_high 1.0, a Real field), and with only NULLs, text.
        frame[column] = frame[column].astype("Int64")
    return frame


def _generation(conn: psycopg.Connection, generation: int | None) -> int:
    from gridmap.errors import NotFoundError

    if generation is None:
        row = conn.execute("SELECT id FROM generations WHERE active").fetchone()
    else:
        row = conn.execute("SELECT id FROM generations WHERE id = %s", (generation,)).fetchone()
    if row is None:
        raise NotFoundError(f"generation {generation or '(active)'} does not exist")
    return int(row[0])


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minx,miny,maxx,maxy`` (EPSG:4326) as four floats; None for None."""
    if text is None:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"bbox {text!r}: expected four numbers minx,miny,maxx,maxy",
                                details=[{"field": "bbox", "value": text}]) from None
    return x0, y0, x1, y1


def _check_bbox(bbox: tuple[float, float, float, float]) -> None:
    x0, y0, x1, y1 = bbox
    if not (x0 < x1 and y0 < y1):
        raise InvalidInputError(f"bbox {bbox} is empty: expected minx,miny,maxx,maxy",
                                details=[{"field": "bbox"}])  # fmt: skip


def write_export(
    frame: gpd.GeoDataFrame, level: str, fmt: str, out: Path, *, encoding: str = "UTF-8"
) -> Path:
    """Write ``frame`` to ``out`` in ``fmt`` (geojson, shapefile = zip, gpkg)."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if encoding.upper() not in ("UTF-8", "GBK"):
        raise InvalidInputError(f"unknown encoding {encoding!r}: UTF-8 or GBK")
    out = Path(out)
    if not out.parent.is_dir():
        raise InvalidInputError(f"{out}: folder {out.parent} does not exist")
    out.unlink(missing_ok=True)
    if fmt == "shapefile":
        if encoding.upper() == "GBK":
            _refuse_outside_gbk(frame)
        _refuse_over_dbf_width(frame, encoding.upper())
        return _write_zipped_shapefile(frame, level, out, encoding.upper())
    driver = FORMATS[fmt][0]
    multi = level in AREA_LEVELS
    pyogrio.write_dataframe(frame, out, driver=driver, layer=level, promote_to_multi=multi)
    return out


def _refuse_outside_gbk(frame: gpd.GeoDataFrame) -> None:
    """Refuse text GBK cannot hold (rare CJK extension characters, emoji): the shapefile
    driver would drop those characters silently."""
    def outside(value: str) -> dict[str, object] | None:
        if _in_gbk(value):
            return None
        return {"value": value,
                "characters": "".join(dict.fromkeys(c for c in value if not _in_gbk(c)))}

    problems = _text_problems(frame, outside)
    if problems:
        first = problems[0]
        raise InvalidInputError(
            f"{len(problems)} value(s) hold characters GBK cannot encode, e.g. feature "
            f"#{first['index']} (code {first['code']}) {first['field']} {first['value']!r}: "
            f"{first['characters']}; export with encoding UTF-8",
            details=problems[:100],
        )


DBF_TEXT_BYTES = 254
"""The most bytes a shapefile's (dBASE) text field holds."""


def _refuse_over_dbf_width(frame: gpd.GeoDataFrame, encoding: str) -> None:
    """Refuse text longer than a DBF field holds in ``encoding``: the shapefile driver
    would cut it (a 159-character name is 477 bytes in UTF-8) with only a warning."""
    def too_long(value: str) -> dict[str, object] | None:
        if len(value) * 4 <= DBF_TEXT_BYTES:  # no character takes more than 4 bytes
            return None
        size = len(value.encode(encoding, errors="replace"))
        return {"bytes": size} if size > DBF_TEXT_BYTES else None

    problems = _text_problems(frame, too_long)
    if problems:
        first = problems[0]
        raise InvalidInputError(
            f"{len(problems)} value(s) are longer than a shapefile text field holds "
            f"({DBF_TEXT_BYTES} bytes), e.g. feature #{first['index']} (code {first['code']}) "
            f"{first['field']} is {first['bytes']} bytes in {encoding}; export as GeoPackage "
            "(.gpkg) or GeoJSON (.geojson), which keep it whole",
            details=problems[:100],
        )


def _text_problems(frame: gpd.GeoDataFrame, problem: Callable[[str], dict[str, object] | None]
                   ) -> list[dict[str, object]]:  # fmt: skip
    """Where (feature index, code, field) ``problem`` finds fault with a text value, and
    what it says."""
    out = []
    for column in frame.columns.drop("geometry"):
        for i, value in enumerate(frame[column]):
            found = problem(value) if isinstance(value, str) else None
            if found:
                out.append({"index": i, "code": frame["code"].iloc[i], "field": column,
                            **found})  # fmt: skip
    return out


def _in_gbk(text: str) -> bool:
    try:
        text.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


def _write_zipped_shapefile(
    frame: gpd.GeoDataFrame, level: str, out: Path, encoding: str
) -> Path:
    renamed = frame.rename(columns={c: _SHAPEFILE_NAMES.get(c, c.upper())
                                    for c in frame.columns if c != "geometry"})  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gridmap-export-") as tmp:
        shp = Path(tmp) / f"{level}.shp"
        pyogrio.write_dataframe(renamed, shp, driver="ESRI Shapefile", encoding=encoding)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for part in sorted(Path(tmp).iterdir()):
                archive.write(part, part.name)
    return out


def export_layer(
    conn: psycopg.Connection,
    level: str,
    out: Path,
    *,
    fmt: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    generation: int | None = None,
    encoding: str = "UTF-8",
) -> tuple[Path, int]:
    """Export ``level`` to ``out`` (format from ``fmt`` or the suffix); returns (path, rows)."""
    fmt = fmt or format_from_suffix(Path(out))
    frame = read_export_frame(conn, level, bbox=bbox, generation=generation)
    return write_export(frame, level, fmt, out, encoding=encoding), len(frame)


def format_from_suffix(path: Path) -> str:
    """geojson / shapefile / gpkg from a file name."""
    suffix = path.suffix.lower()
    for name, (_driver, ext, _media) in FORMATS.items():
        if suffix == ext or (name == "geojson" and suffix == ".json"):
            return name
    raise InvalidInputError(f"{path.name}: say the format by suffix (.geojson, .zip, .gpkg)")
