"""Imports of buildings, facilities and workers: read, check, upsert by code.

Unlike area levels these are not versioned in generations: a committed file updates
the rows with the same code and inserts the others, in one transaction (staged with
COPY into a temporary table, then one ``INSERT … ON CONFLICT (code) DO UPDATE``).
Buildings and facilities get their grid by the lookup rule (the active grid covering
the point — a building's point-on-surface — lowest code on ties).
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import shapely
import sqlalchemy as sa

from gridmap.db.long_writes import configure_long_write
from gridmap.errors import InvalidInputError
from gridmap.generations import valid_in_sql
from gridmap.ingest import bulk
from gridmap.ingest.checks import (
    Finding,
    Parents,
    Report,
    error_details,
    excel_hint,
    report_of_read,
)
from gridmap.ingest.compare import SAME_WITHIN_DEG
from gridmap.ingest.reader import (
    FIELD_CANDIDATES,
    Progress,
    ReadOptions,
    choose_layer,
    column_texts,
    no_progress,
    read_layer,
)
from gridmap.ingest.text import guess_encoding, normalise_encoding, refuse_mojibake
from gridmap.models import Base, Building, Facility, Worker

FEATURE_LEVELS = ("building", "facility", "worker")
MODELS: dict[str, type[Base]] = {"building": Building, "facility": Facility, "worker": Worker}
TABLES = {level: str(model.__tablename__) for level, model in MODELS.items()}
FACILITY_STATES = {"intact": "intact", "damaged": "damaged", "lost": "lost",
                   "removed": "removed", "完好": "intact", "损坏": "damaged", "破损": "damaged",
                   "丢失": "lost", "移除": "removed", "拆除": "removed"}  # fmt: skip
"""A facility state as files write it (English or Chinese) → as stored."""
WORKER_ROLES = {"grid_leader": "grid_leader", "full_time": "full_time",
                "part_time": "part_time", "网格长": "grid_leader", "专职": "full_time",
                "专职网格员": "full_time", "兼职": "part_time",
                "兼职网格员": "part_time"}  # fmt: skip
REQUIRED = {"building": (), "facility": (), "worker": ("name", "role", "grids")}
"""Fields besides the code without which a feature cannot be stored (the others have
defaults: address '', floors 1, use residential, name '', state intact, phone none)."""
_FACILITY_CODE = re.compile(r"^[0-9]{16}$")  # not \d: it takes full-width digits
_GRID_SPLIT = re.compile(r"[;,，；、\s]+")
"""Between a worker's grid codes: semicolons, commas (ASCII or full-width), the
enumeration comma 、 or white space."""


@dataclass
class FeaturePlan:
    """Checked features ready to upsert."""

    report: Report
    frame: pd.DataFrame
    level: str


def prepare_features(
    conn: psycopg.Connection,
    path: Path | str,
    level: str,
    options: ReadOptions | None = None,
    progress: Progress | None = None,
    *,
    fix: bool = False,
    staged_diff: bool = True,
) -> FeaturePlan:
    """Read and check a building, facility or worker file against the database (dry run).

    ``fix``: repair invalid building footprints by ``make_valid`` where that gives one
    polygon (a warning each) instead of refusing them. ``staged_diff=False``: only count
    the rows the file names that are stored already (for a commit that follows at once:
    :func:`commit_features` stages the rows and gives the exact diff)."""
    step = progress or no_progress
    grids = _active_grids(conn)
    if level == "worker":
        frame, report = _read_workers(Path(path), options or ReadOptions())
    else:
        read = read_layer(path, level, options, lambda f, m: step(f * 0.5, m))
        report = report_of_read(read, level)
        frame = pd.DataFrame(read.frame)
    step(0.6, "checking")
    _check_frame(conn, frame, level, grids, report, fix)
    if level != "worker":
        _locate_findings(frame, level, report.findings)
    report.findings.sort(key=lambda f: (f.severity != "error", f.check, f.index or -1))
    plan = FeaturePlan(report, frame, level)
    report.diff = _upsert_diff(conn, plan, staged=staged_diff and not report.errors)
    step(1.0, "checked")
    return plan


def _active_grids(conn: psycopg.Connection) -> Parents:
    rows = conn.execute(
        "SELECT code, ST_AsBinary(geom) FROM areas a JOIN generations g"
        f" ON g.active AND {valid_in_sql('g.id', 'a')}"
        " WHERE a.level = 'grid' ORDER BY code"
    ).fetchall()
    if not rows:
        return Parents.empty()
    return Parents(np.array([r[0] for r in rows], dtype=object),
                   shapely.from_wkb([bytes(r[1]) for r in rows]))  # fmt: skip


# --- checks --------------------------------------------------------------------------------


def _check_frame(conn: psycopg.Connection, frame: pd.DataFrame, level: str, grids: Parents,
                 report: Report, fix: bool = False) -> None:  # fmt: skip
    """Every check of one level's features, in place (derived columns are added).

    Missing values — None, NaN (what pandas makes of an empty cell) or blank text —
    all become None first, so that no check mistakes NaN for a value and nothing
    missing reaches a NOT NULL column at commit.
    """
    add = report.findings.append
    _blank_to_none(frame)
    _check_required(frame, level, report.fields, add)
    if level == "worker":
        _check_workers(frame, grids, add)
    else:
        _check_geometry(frame, level, add, fix)
        frame["grid_code"] = pd.Series(_assign_grids(frame, level, grids, add),
                                       index=frame.index, dtype=object)  # fmt: skip
        if level == "building":
            _check_buildings(frame, add)
        else:
            _check_facilities(conn, frame, add)
    limits = text_limits(level)
    _check_lengths(frame, {k: v for k, v in limits.items() if k != "code"}, report.fields, add)
    # a facility code's length is part of its 16-digit format, checked with it
    _check_codes(frame, report.fields.get("code"), None if level == "facility" else
                 limits["code"], add)  # fmt: skip


def _locate_findings(frame: pd.DataFrame, level: str, findings: list[Finding]) -> None:
    """Give each finding about one feature, without a location, a point on that feature:
    a building's point on surface, a facility's point; for a geometry the checks could
    not use (invalid, wrong type) its first vertex, which GEOS computes without fail."""
    wanted = sorted({f.index for f in findings if f.index is not None and f.location is None})
    if not wanted:
        return
    geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)[wanted]
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    usable = frame.usable.to_numpy(dtype=bool)[wanted] & present
    points = np.full(len(wanted), None, dtype=object)
    points[usable] = (shapely.point_on_surface(geoms[usable]) if level == "building"
                      else geoms[usable])  # fmt: skip
    rest = present & ~usable
    coords, owner = shapely.get_coordinates(geoms[rest], return_index=True)
    points[rest] = shapely.points(coords[np.unique(owner, return_index=True)[1]])
    at = {i: (float(p.x), float(p.y)) for i, p in zip(wanted, points, strict=True)
          if p is not None}  # fmt: skip
    for finding in findings:
        if finding.index in at and finding.location is None:
            finding.location = at[finding.index]


def _missing(values: pd.Series) -> np.ndarray:
    """Where ``values`` are None, NaN or blank text."""
    blank = values.map(lambda v: isinstance(v, str) and not v.strip(), na_action="ignore")
    return values.isna().to_numpy() | blank.eq(True).to_numpy(dtype=bool)  # NaN where missing


def _blank_to_none(frame: pd.DataFrame) -> None:
    """Every missing attribute value as None, in object columns (pandas would turn
    None back into NaN in a string column)."""
    for column in frame.columns.drop("geometry", errors="ignore"):
        values = frame[column].astype(object)
        frame[column] = pd.Series(np.where(_missing(values), None, values.to_numpy()),
                                  index=frame.index, dtype=object)  # fmt: skip


def _check_required(frame: pd.DataFrame, level: str, fields: dict[str, str | None],
                    add: Any) -> None:  # fmt: skip
    """An error for each empty value of a field the level cannot do without (the code
    is :func:`_check_codes`'s)."""
    codes = frame.code.to_numpy(dtype=object)
    for role in REQUIRED[level]:
        for i in np.flatnonzero(frame[role].isna().to_numpy()):
            add(Finding("error", "missing_value", f"{role} is empty (field {fields.get(role)!r})",
                        int(i), codes[i]))  # fmt: skip


def text_limits(level: str) -> dict[str, int]:
    """The length of each VARCHAR column of ``level``'s table, as its model declares it
    (TEXT columns have none)."""
    columns = MODELS[level].__table__.columns  # type: ignore[attr-defined]
    return {c.name: c.type.length for c in columns
            if isinstance(c.type, sa.String) and c.type.length is not None}  # fmt: skip


def _check_lengths(frame: pd.DataFrame, limits: dict[str, int], fields: dict[str, str | None],
                   add: Any) -> None:  # fmt: skip
    """An error for each text value longer than its column holds: COPY would otherwise
    end the dry run with PostgreSQL's StringDataRightTruncation."""
    codes = frame.code.to_numpy(dtype=object)
    for column, limit in limits.items():
        if column not in frame.columns:
            continue
        for i, value in enumerate(frame[column].to_numpy(dtype=object)):
            if isinstance(value, str) and len(value) > limit:
                add(Finding("error", "too_long", f"{column} is {len(value)} characters, longer "
                            f"than the {limit} its column holds (field {fields.get(column)!r})",
                            i, codes[i]))  # fmt: skip


def _check_codes(frame: pd.DataFrame, field: str | None, limit: int | None, add: Any) -> None:
    codes = pd.Series(frame.code.to_numpy(dtype=object), dtype=object)
    for i in np.flatnonzero(codes.isna().to_numpy()):
        add(Finding("error", "malformed_code", f"code is empty (field {field!r})", int(i), None))
    first = pd.Series(np.arange(len(codes))).groupby(codes.fillna("").to_numpy()).transform("min")
    duplicate = codes.notna().to_numpy() & (first.to_numpy() != np.arange(len(codes)))
    for i in np.flatnonzero(duplicate):
        add(Finding("error", "duplicate_code", f"same code as feature #{first[i]}",
                    int(i), codes[i]))  # fmt: skip
    if limit is None:
        return
    too_long = codes.notna().to_numpy() & (codes.fillna("").str.len() > limit).to_numpy()
    for i in np.flatnonzero(too_long):
        add(Finding("error", "malformed_code", f"code is longer than {limit} characters",
                    int(i), codes[i]))  # fmt: skip


def _check_geometry(frame: pd.DataFrame, level: str, add: Any, fix: bool = False) -> None:
    """Buildings: one valid polygon each (``fix``: repaired where ``make_valid`` gives
    one); facilities: points."""
    geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)
    codes = frame.code.to_numpy(dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    kinds = shapely.get_type_id(geoms)
    if level == "building":
        multi = (kinds == 6) & ~missing
        parts = np.zeros(len(geoms), dtype=int)
        parts[multi] = shapely.get_num_geometries(geoms[multi])
        single = multi & (parts == 1)
        geoms[single] = shapely.get_geometry(geoms[single], 0)
        wrong = ~missing & ~((kinds == 3) | single)
        what = "a single polygon"
    else:
        wrong = ~missing & (kinds != 0)
        what = "a point"
    for i in np.flatnonzero(missing):
        add(Finding("error", "empty_geometry", "feature has no geometry", int(i), codes[i]))
    for i in np.flatnonzero(wrong):
        add(Finding("error", "wrong_geometry", f"{geoms[i].geom_type} is not {what}",
                    int(i), codes[i]))  # fmt: skip
    invalid = ~missing & ~wrong & ~shapely.is_valid(geoms)
    for i in np.flatnonzero(invalid):
        reason = str(shapely.is_valid_reason(geoms[i]))
        repaired = _one_polygon(shapely.make_valid(geoms[i])) if fix else None
        if repaired is None:
            add(Finding("error", "invalid_geometry", reason + (
                "; make_valid does not give one polygon" if fix else ""), int(i), codes[i]))
            continue
        geoms[i], invalid[i] = repaired, False
        add(Finding("warning", "invalid_geometry", f"{reason}: repaired by make_valid",
                    int(i), codes[i]))  # fmt: skip
    frame["geometry"] = geoms
    frame["usable"] = ~(missing | wrong | invalid)


def _one_polygon(geom: Any) -> Any:
    """``geom``'s single polygon (a repair can add slivers of lower dimension), or None."""
    polygons = [p for p in shapely.get_parts(geom)
                if shapely.get_type_id(p) in (3, 6)]  # fmt: skip
    parts = shapely.get_parts(np.array(polygons, dtype=object)) if polygons else []
    return parts[0] if len(parts) == 1 else None


def _assign_grids(frame: pd.DataFrame, level: str, grids: Parents, add: Any) -> list[Any]:
    """The grid of each feature by the lookup rule; an error for those outside every grid."""
    usable = frame.usable.to_numpy()
    idx = np.flatnonzero(usable)
    geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)[idx]
    points = shapely.point_on_surface(geoms) if level == "building" else geoms
    out: list[Any] = [None] * len(frame)
    if grids.codes.size and idx.size:
        hit, grid = shapely.STRtree(grids.geoms).query(points, predicate="covered_by")
        best = pd.Series(grid).groupby(hit).min()  # grids are sorted by code: lowest code
        for k, g in best.items():
            out[int(idx[int(k)])] = grids.codes[g]  # type: ignore[call-overload]
    codes = frame.code.to_numpy(dtype=object)
    xy = shapely.get_coordinates(points) if idx.size else np.zeros((0, 2))
    for k, i in enumerate(idx):
        if out[i] is None:
            add(Finding("error", "outside_grid", "lies outside every active grid", int(i),
                        codes[i], (float(xy[k, 0]), float(xy[k, 1]))))  # fmt: skip
    return out


def _check_buildings(frame: pd.DataFrame, add: Any) -> None:
    codes = frame.code.to_numpy(dtype=object)
    floors = frame.floors.to_numpy(dtype=object)
    parsed = []
    for i, value in enumerate(floors):
        if value is None:
            parsed.append(1)
        elif _ascii_digits(str(value)) and 0 < int(value) < 1000:
            parsed.append(int(value))
        else:
            parsed.append(1)
            add(Finding("error", "bad_value", f"floors {value!r} is not a whole number 1–999",
                        i, codes[i]))  # fmt: skip
    frame["floors"] = parsed
    frame["address"] = frame.address.where(frame.address.notna(), "")
    frame["use"] = frame.use.where(frame.use.notna(), "residential")


def _ascii_digits(text: str) -> bool:
    """Whether ``text`` is ASCII digits only (``str.isdigit`` takes '５' and '²' too)."""
    return text.isascii() and text.isdigit()


def _check_facilities(conn: psycopg.Connection, frame: pd.DataFrame, add: Any) -> None:
    """16-digit code: known area prefix, known major/minor class, sequence; known state."""
    areas = {r[0] for r in conn.execute(
        "SELECT code FROM areas WHERE level IN ('city', 'district') AND generation_high IS NULL"
    ).fetchall()}  # fmt: skip
    classes = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(
        "SELECT major_code, minor_code, owner_department_code, maintainer_department_code"
        " FROM facility_categories").fetchall()}  # fmt: skip
    owners, maintainers, majors, minors, states = [], [], [], [], []
    for i, (code, state) in enumerate(zip(frame.code, frame.state, strict=True)):
        major = minor = owner = maintainer = None
        if code is not None and not _FACILITY_CODE.match(code):
            add(Finding("error", "malformed_code", f"{code!r} is not a 16-digit facility code "
                        "(6-digit area + 2-digit major + 2-digit minor class + 6-digit "
                        f"sequence){excel_hint(code)}", i, code))  # fmt: skip
        elif code is not None:
            major, minor = code[6:8], code[8:10]
            if code[:6] not in areas:
                add(Finding("error", "unknown_area", f"area prefix {code[:6]} is not an active "
                            "district", i, code))  # fmt: skip
            if (major, minor) not in classes:
                add(Finding("error", "unknown_class", f"class {major}/{minor} is not in the "
                            "facility catalogue", i, code))  # fmt: skip
            else:
                owner, maintainer = classes[(major, minor)]
            if code[10:] == "000000":
                add(Finding("error", "malformed_code", "sequence 000000 is not allowed", i, code))
        if state is not None and state not in FACILITY_STATES:
            add(Finding("error", "bad_value", f"state {state!r} is not one of intact, damaged, "
                        "lost, removed (完好, 损坏/破损, 丢失, 移除/拆除)", i, code))  # fmt: skip
        # an unknown state (an error above) is dropped: checked for length, it would be
        # reported twice
        states.append(FACILITY_STATES.get(state) if state is not None else "intact")
        majors.append(major)
        minors.append(minor)
        owners.append(owner)
        maintainers.append(maintainer)
    frame["major_code"], frame["minor_code"] = majors, minors
    frame["owner_department_code"], frame["maintainer_department_code"] = owners, maintainers
    frame["name"] = frame.name.where(frame.name.notna(), "")
    frame["state"] = pd.Series(states, index=frame.index, dtype=object)


# --- workers -------------------------------------------------------------------------------


def _read_workers(path: Path, options: ReadOptions) -> tuple[pd.DataFrame, Report]:
    """A worker table: CSV (UTF-8 or GBK, detected) or any attribute layer GDAL reads."""
    if path.is_dir():
        raise InvalidInputError(f"{path.name}: is a folder; give the worker table itself (a "
                                ".csv, .dbf, .shp or .gpkg)", details=[{"file": path.name}])
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file", details=[{"file": str(path)}])
    if path.suffix.lower() == ".csv":
        raw, encoding = _read_csv(path, options.encoding)
    elif path.suffix.lower() in (".dbf", ".shp"):
        raw, encoding = _read_dbf(path, options.encoding)
    else:
        raw, encoding = _read_table(path, options.layer), "UTF-8"
    if raw.empty:
        raise InvalidInputError(f"{path.name}: holds no rows (only a header?)",
                                details=[{"file": path.name, "problem": "no_rows"}])
    raw.columns = [str(c).strip() for c in raw.columns]
    mapping = _worker_fields(list(raw.columns), options, path.name)
    frame = pd.DataFrame({role: pd.Series(column_texts(raw, column, role, path.name), dtype=object)
                          for role, column in mapping.items()})  # fmt: skip
    report = Report(level="worker", source=path.name, feature_count=len(frame), bounds=None,
                    crs="", crs_note="no geometry", encoding=encoding, fields=mapping)  # fmt: skip
    return frame, report


_SPREADSHEETS = (".xlsx", ".ods")
"""Tables whose first row GDAL takes for a header only if a later row holds a number."""


def _read_table(path: Path, layer: str | None, encoding: str | None = None) -> pd.DataFrame:
    """An attribute table GDAL reads (.xlsx, .gpkg, .dbf …), without geometry.

    A spreadsheet's first row is always its header: GDAL would otherwise read a sheet of
    text cells only (every column formatted as text, as codes should be) as data, with
    columns Field1, Field2 …
    """
    import pyogrio

    header = {"HEADERS": "FORCE"} if path.suffix.lower() in _SPREADSHEETS else {}
    try:
        chosen, _ = choose_layer(path, "worker", layer, path.name)
        return pyogrio.read_dataframe(path, layer=chosen, read_geometry=False,
                                      encoding=encoding, **header)  # fmt: skip
    except InvalidInputError:
        raise
    except Exception as exc:  # GDAL raises several kinds on unreadable files
        raise InvalidInputError(f"{path.name}: cannot read: {exc}") from None


def _read_dbf(path: Path, asked: str | None) -> tuple[pd.DataFrame, str]:
    """A dBASE table, its text decoded as the areas' shapefiles are: ``--encoding``, else
    the .cpg, else UTF-8 when every value is valid UTF-8, else GBK (GDAL alone would take
    a GBK table without .cpg for Latin-1 and garble every name)."""
    cpg = next((p for p in path.parent.glob(path.stem + ".*") if p.suffix.lower() == ".cpg"),
               None)  # fmt: skip
    declared = asked or (cpg.read_text(errors="replace").strip() if cpg else None)
    raw = _read_table(path, None, encoding="latin1")  # every byte kept as one character
    texts = [c for c in raw.columns if raw[c].map(lambda v: isinstance(v, str)).any()]
    blobs = [v.encode("latin1") for c in texts for v in raw[c] if isinstance(v, str)]
    encoding = normalise_encoding(declared) if declared else guess_encoding(blobs)
    refuse_mojibake(blobs, encoding, path.name, path.name, declared is not None)
    for column in texts:
        raw[column] = pd.Series([v.encode("latin1").decode(encoding) if isinstance(v, str)
                                 else v for v in raw[column]], index=raw.index,
                                dtype=object)  # fmt: skip
    return raw, encoding


def _read_csv(path: Path, asked: str | None) -> tuple[pd.DataFrame, str]:
    data = path.read_bytes()
    candidates = [asked] if asked else ["utf-8-sig", "GBK"]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if asked and codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
            refuse_mojibake([data], normalise_encoding(asked), path.name, path.name, True,
                            fix="")  # fmt: skip
        frame = _parse_csv(text, path.name)
        return frame.replace("", None), "UTF-8" if encoding == "utf-8-sig" else encoding
    raise InvalidInputError(
        f"{path.name}: text is not valid {' or '.join(c or '' for c in candidates)}; "
        "pass --encoding", details=[{"file": path.name, "problem": "encoding"}],
    )  # fmt: skip


_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _parse_csv(text: str, label: str) -> pd.DataFrame:
    """The CSV's rows as text; InvalidInputError naming the line for what pandas refuses."""
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InvalidInputError(
            f"{label}: the file is empty (no header row); expected a header such as "
            "code,name,phone,role,grid_code", details=[{"file": label, "problem": "empty"}],
        ) from None  # fmt: skip
    except pd.errors.ParserError as exc:
        ragged = _RAGGED.search(str(exc))
        if ragged is None:
            raise InvalidInputError(f"{label}: not a readable CSV file: {exc}",
                                    details=[{"file": label, "problem": "csv"}]) from None
        header, line, fields = (int(v) for v in ragged.groups())
        raise InvalidInputError(
            f"{label}: line {line} has {fields} fields, the header has {header}; a value "
            "holding a comma must be quoted (\"a,b\")",
            details=[{"file": label, "line": line, "problem": "csv_fields"}],
        ) from None


def _worker_fields(columns: list[str], options: ReadOptions, label: str) -> dict[str, str | None]:
    lowered = {c.lower(): c for c in columns}
    mapping: dict[str, str | None] = {}
    for role in ("code", "name", "phone", "role", "grids"):
        asked = {"code": options.code_field, "name": options.name_field}.get(role)
        if asked is not None and asked.lower() not in lowered:
            raise InvalidInputError(f"{label}: field {asked!r} not found; fields are {columns}")
        names = (asked,) if asked else FIELD_CANDIDATES[role]
        mapping[role] = next((lowered[n.lower()] for n in names if n.lower() in lowered), None)
    for role in ("code", "name", "role", "grids"):
        if mapping[role] is None:
            raise InvalidInputError(
                f"{label}: no {role} field found among {columns}",
                details=[{"file": label, "problem": f"no_{role}_field"}],
            )
    return mapping


def _check_workers(frame: pd.DataFrame, grids: Parents, add: Any) -> None:
    known = set(grids.codes.tolist())
    roles, lists = [], []
    for i, row in enumerate(frame.itertuples(index=False)):
        role = WORKER_ROLES.get(row.role) if row.role is not None else None
        if role is None and row.role is not None:  # a missing one is _check_required's
            add(Finding("error", "bad_value", f"role {row.role!r} is not one of grid_leader, "
                        "full_time, part_time (网格长, 专职, 兼职)", i, row.code))  # fmt: skip
        codes = [c for c in _GRID_SPLIT.split(row.grids or "") if c]
        if not codes and row.grids is not None:
            add(Finding("error", "unknown_grid", "no grid code", i, row.code))
        for grid in codes:
            if grid not in known:
                add(Finding("error", "unknown_grid", f"grid {grid} is not an active "
                            f"grid{excel_hint(grid)}", i, row.code))  # fmt: skip
        roles.append(role)
        lists.append(codes)
    frame["role"], frame["grids"] = roles, lists


# --- diff and commit -----------------------------------------------------------------------


_STAGE = "CREATE TEMP TABLE {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
_DIFF = """
SELECT count(*) FILTER (WHERE t.code IS NULL),
       array_agg(s.code) FILTER (WHERE t.code IS NOT NULL AND ({changed})),
       array_agg(s.code) FILTER (WHERE t.code IS NOT NULL AND NOT ({changed})),
       (SELECT count(*) FROM {table} k WHERE NOT EXISTS (
            SELECT 1 FROM {stage} x WHERE x.code = k.code))
FROM {stage} s LEFT JOIN {table} t ON t.code = s.code
"""
_UPSERT = """
WITH up AS (
    INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage}
    ON CONFLICT (code) DO UPDATE SET {updates} WHERE {changed}
    RETURNING id
)
SELECT count(*) FROM up
"""


def _stage(conn: psycopg.Connection, plan: FeaturePlan) -> tuple[str, list[str]]:
    """COPY the plan's rows into a temporary table (dropped at the transaction's end);
    returns its name and the columns written."""
    table = TABLES[plan.level]
    stage = f"stage_{table}"
    conn.execute(f"DROP TABLE IF EXISTS {stage}")  # names are ours
    conn.execute(_STAGE.format(stage=stage, table=table))
    columns = _stage_columns(plan)
    bulk._copy(conn, stage, columns)
    return stage, [c for c in columns if c != "id"]


def _staged_diff(conn: psycopg.Connection, plan: FeaturePlan, stage: str, names: list[str]
                 ) -> dict[str, Any]:  # fmt: skip
    """What upserting the staged rows does: inserted, updated, unchanged, and how many
    stored rows the file does not name (kept as they are)."""
    table = TABLES[plan.level]
    row = conn.execute(_DIFF.format(table=table, stage=stage, changed=_changed(names, "t", "s")),
                       {"within": SAME_WITHIN_DEG}).fetchone()  # fmt: skip
    assert row is not None
    inserted, updated, unchanged, kept = int(row[0]), row[1] or [], row[2] or [], int(row[3])
    if plan.level == "worker":  # their grids live in worker_assignments
        moved = _workers_with_other_grids(conn, plan.frame, unchanged)
        updated, unchanged = updated + moved, [c for c in unchanged if c not in set(moved)]
    return {"inserted": inserted, "updated": len(updated), "unchanged": len(unchanged),
            "kept_not_in_file": kept}  # fmt: skip


_SAME_GEOM = """CASE WHEN ST_Normalize({old}.geom) = ST_Normalize({new}.geom) THEN TRUE
    ELSE ST_NPoints({old}.geom) = ST_NPoints({new}.geom)
         AND ST_HausdorffDistance({old}.geom, {new}.geom) <= %(within)s END"""
"""Whether two geometries are the same feature: equal up to ring orientation and start
(files wind rings their own way), or, only where that fails (CASE evaluates in order),
with as many vertices, each within ``within`` degrees of the other's outline.

GeoJSON's 15 significant digits and re-projection round trips move vertices by
~1e-14°. Not ST_OrderingEquals on ST_SnapToGrid'ed copies: two values 1e-15 apart can
snap to neighbouring cells, and ST_Normalize picks its start vertex by the lowest
coordinate, which such noise can flip between two vertices on a vertical edge. The
discrete Hausdorff distance is indifferent to both; with equal vertex counts it only
lets through a vertex moved along its own outline, which leaves the shape as it was."""


def _changed(names: list[str], old: str, new: str) -> str:
    """SQL that is true where row ``new`` changes stored row ``old``: an attribute
    differs, or the geometry is not the same (:data:`_SAME_GEOM`, within
    :data:`~gridmap.ingest.compare.SAME_WITHIN_DEG`; bound as ``%(within)s``); the
    derived Web Mercator copy is left out."""
    attributes = [c for c in names if c not in ("code", "geom", "geom_3857")]
    changed = (f"({', '.join(f'{old}.{c}' for c in attributes)}) IS DISTINCT FROM "
               f"({', '.join(f'{new}.{c}' for c in attributes)})")  # fmt: skip
    if "geom" in names:
        changed += f" OR NOT ({_SAME_GEOM.format(old=old, new=new)})"
    return f"({changed})"


def _workers_with_other_grids(conn: psycopg.Connection, frame: pd.DataFrame,
                              codes: list[str]) -> list[str]:  # fmt: skip
    stored: dict[str, list[str | None]] = dict(conn.execute(
        "SELECT w.code, array_agg(a.grid_code ORDER BY a.grid_code) FROM workers w"
        " LEFT JOIN worker_assignments a ON a.worker_id = w.id WHERE w.code = ANY(%s)"
        " GROUP BY w.code", (codes,)).fetchall())  # fmt: skip
    given = dict(zip(frame.code, frame.grids, strict=True))
    return [c for c in codes
            if sorted(given.get(c) or []) != sorted(g for g in stored.get(c) or [] if g)]


def _upsert_diff(conn: psycopg.Connection, plan: FeaturePlan, staged: bool) -> dict[str, Any]:
    """The dry run's diff: the rows staged and compared, then rolled back; not ``staged``
    (or with errors in the report, when nothing can be staged), only the rows the file
    names and how many of them are stored."""
    codes = [c for c in plan.frame.code.tolist() if c is not None]
    if not staged:
        row = conn.execute(f"SELECT count(*) FROM {TABLES[plan.level]} WHERE code = ANY(%s)",
                           (codes,)).fetchone()  # fmt: skip
        stored = int(row[0]) if row else 0
        return {"inserted": len(set(codes)) - stored, "updated": stored}
    with conn.transaction(force_rollback=True):
        stage, names = _stage(conn, plan)
        return _staged_diff(conn, plan, stage, names)


def commit_features(conn: psycopg.Connection, plan: FeaturePlan,
                    progress: Progress | None = None) -> Report:  # fmt: skip
    """Upsert the plan's features by code in one transaction (errors block this); rows
    the file gives unchanged are left as they are."""
    step = progress or no_progress
    report = plan.report
    if report.errors:
        raise InvalidInputError(
            f"{report.source}: {report.errors} error(s) in the report block --commit; "
            "fix the file and try again",
            details=error_details(report),
        )  # fmt: skip
    table = TABLES[plan.level]
    with conn.transaction():
        configure_long_write(conn)
        step(0.3, "staging")
        stage, names = _stage(conn, plan)
        report.diff = _staged_diff(conn, plan, stage, names)
        conn.execute(_UPSERT.format(
            table=table, stage=stage, columns=", ".join(names),
            updates=", ".join(f"{c} = EXCLUDED.{c}" for c in names if c != "code"),
            changed=_changed(names, table, "EXCLUDED")), {"within": SAME_WITHIN_DEG})  # fmt: skip
        if plan.level == "worker":
            _replace_assignments(conn, plan.frame)
    report.committed = True
    step(1.0, "committed")
    return report


def _stage_columns(plan: FeaturePlan) -> bulk.Columns:
    frame = plan.frame
    if plan.level == "building":
        geom, geom_3857 = bulk.ewkb_pair(np.asarray(frame.geometry.to_numpy(), dtype=object),
                                         multi=False)  # fmt: skip
        return {"code": bulk._text(frame.code), "address": bulk._text(frame.address),
                "floors": bulk._ints(frame.floors), "use": bulk._text(frame.use),
                "grid_code": bulk._text(frame.grid_code), "geom": geom, "geom_3857": geom_3857}
    if plan.level == "facility":
        columns = {c: bulk._text(frame[c]) for c in (
            "code", "major_code", "minor_code", "name", "state", "grid_code",
            "owner_department_code", "maintainer_department_code")}  # fmt: skip
        columns["geom"] = bulk._ewkb(np.asarray(frame.geometry.to_numpy(), dtype=object), 4326)
        return columns
    return {c: bulk._text(frame[c]) for c in ("code", "name", "phone", "role")}


def _replace_assignments(conn: psycopg.Connection, frame: pd.DataFrame) -> None:
    pairs = [(code, grid) for code, grids in zip(frame.code, frame.grids, strict=True)
             for grid in grids]  # fmt: skip
    conn.execute(
        "DELETE FROM worker_assignments wa USING workers w"
        " WHERE wa.worker_id = w.id AND w.code = ANY(%s)", (frame.code.tolist(),),
    )  # fmt: skip
    conn.execute(
        "INSERT INTO worker_assignments (worker_id, grid_code)"
        " SELECT w.id, x.grid FROM unnest(%s::text[], %s::text[]) AS x(code, grid)"
        " JOIN workers w ON w.code = x.code ON CONFLICT DO NOTHING",
        ([c for c, _ in pairs], [g for _, g in pairs]),
    )
