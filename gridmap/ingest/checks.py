"""Checks of an area layer before it is published, and the report they make.

Every finding names the feature index (file order), the code and a location
(lon, lat). Errors block ``--commit``; warnings and infos do not. Gaps and overlaps
over their thresholds are errors; those under them are summed up per parent in one
info finding (how many, how much area, where the largest is). The spatial checks are
vectorised: parents their children tile exactly are found first by cancelling boundary
segments (:mod:`gridmap.ingest.tiling`, one hashing pass); around the rest, sibling overlaps
come from STRtree candidate pairs (only around polygons that
``shapely.coverage_invalid_edges`` flags), gaps from union differences — no O(n²) loops.

When the published generation's areas of the level passed these checks (a clean
coverage, each area covered by its parent), the caller passes which features are
unchanged from it; the coverage and containment tests then run only on the changed
features and the features whose envelopes touch theirs. Unchanged pairs were verified
when published, so the findings are the same as a full check's (the tests compare
them finding by finding).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gridmap.ingest.reader import LayerRead
from gridmap.ingest.tiling import tiled_parents

CODE_LENGTH = {"district": 6, "street": 9, "community": 12, "grid": 15}
PARENT_LEVEL = {"district": "city", "street": "district", "community": "street",
                "grid": "community"}  # fmt: skip
CHILD_LEVEL = {parent: child for child, parent in PARENT_LEVEL.items()}
_M_PER_DEG = 111_320.0
GAP_FREE_M2 = 0.01
"""A layer is marked checked only if no parent has more than this uncovered (m²)."""
NOTED_M2 = GAP_FREE_M2
"""Gaps (and overlaps) under their threshold are noted where they add up to more than
this in a parent (m²): less is the noise of a re-projection (~1e-5 m² per parent)."""
SEVERITIES = ("error", "warning", "info")
"""In the order a report lists them."""
_SCIENTIFIC = re.compile(r"^[+-]?[0-9]+(\.[0-9]*)?[eE][+-]?[0-9]+$")


def excel_hint(value: object) -> str:
    """A hint to append to a finding about a code that reads like ``5.00103E+14``, else ''.

    Excel shows a number of more than 11 digits in scientific notation and saves it to
    CSV as shown: the code's later digits are gone, and only the source can restore them.
    """
    if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
        return ("; looks like a number Excel turned into scientific notation: format the "
                "column as text")
    return ""


@dataclass
class Thresholds:
    """Configurable limits (areas in m², fractions 0–1)."""

    sliver_m2: float = 1.0
    overlap_m2: float = 1.0
    gap_m2: float = 1.0
    outside_fraction: float = 0.001
    fix: bool = False


@dataclass
class Finding:
    """One problem found in one feature (or in the layer when ``index`` is None)."""

    severity: str
    check: str
    message: str
    index: int | None = None
    code: str | None = None
    location: tuple[float, float] | None = None
    area_m2: float | None = None


@dataclass
class Report:
    """Everything an import says about a layer: counts, CRS, encoding, findings, diff."""

    level: str
    source: str
    feature_count: int
    bounds: tuple[float, float, float, float] | None
    crs: str
    crs_note: str
    encoding: str
    fields: dict[str, str | None]
    findings: list[Finding] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    """How the coverage checks ran: ``clean`` (no invalid edges), ``inside_parents``
    (every area covered by its parent), ``scope`` (``full``, or ``changed`` when the
    published generation's checked areas were taken as checked), ``tiled`` (features
    whose parents they tile exactly: proven without GEOS) and ``features_checked``
    (looked at by the GEOS overlap check)."""
    diff: dict[str, Any] | None = None
    reassignment: dict[str, Any] | None = None
    generation_id: int | None = None
    committed: bool = False
    unchanged: bool = False
    """Committed, but the file matched the active generation: no new generation was
    made (``generation_id`` is the active one, which stays active)."""

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)

    @property
    def infos(self) -> int:
        """Findings for the record only (gaps and overlaps under their thresholds)."""
        return sum(f.severity == "info" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the ``--json`` output and the API's report)."""
        out = asdict(self)
        out.update(errors=self.errors, warnings=self.warnings, infos=self.infos)
        return json.loads(json.dumps(out, default=float))

    def to_text(self, limit: int = 10) -> str:
        """A human-readable report: what was read, the counts per severity and check,
        the outcome (diff, re-assignment, commit), then the findings — at most ``limit``
        of each check and severity, so that a thousand gaps hide no other problem."""
        lines = [
            f"{self.source}: {self.feature_count:,} {self.level} features",
            (f"  CRS: {self.crs} ({self.crs_note})" if self.crs else
             "  no geometry (an attribute table)") + f"; encoding: {self.encoding}",
            f"  fields: {', '.join(f'{k}={v}' for k, v in self.fields.items())}",
        ]
        if self.bounds:
            lines.append("  bounds: " + ", ".join(f"{v:.6f}" for v in self.bounds))
        if self.coverage.get("tiled"):
            tiled = self.coverage["tiled"]
            verb = "tiles its parent" if tiled == 1 else "tile their parents"
            lines.append(f"  {_count(tiled, 'features')} {verb} exactly (boundary segments "
                         "cancel): no overlap, gap or overhang there")  # fmt: skip
        if self.coverage.get("scope") == "changed":
            lines.append(f"  overlaps and containment checked around the changes "
                         f"({_count(self.coverage['features_checked'], 'features')}); the rest "
                         "passed them when published")  # fmt: skip
        lines.append("  " + self.counts())
        lines += self._outcome_lines(limit)
        for (severity, check), found in self._groups().items():
            lines += [_finding_text(f) for f in found[:limit]]
            if len(found) > limit:
                lines.append(f"  … and {len(found) - limit:,} more {check} {severity}(s) "
                             "(--json lists every finding)")  # fmt: skip
        return "\n".join(lines)

    def counts(self) -> str:
        """The findings counted by severity and check: '3 error(s) (2 gap, 1 overlap),
        0 warning(s), 1 info (1 gap)' (the text report's and the upload job's summary)."""
        groups = self._groups()
        parts = []
        for severity, noun in zip(SEVERITIES, ("error(s)", "warning(s)", "info"), strict=True):
            checks = {check: len(found) for (sev, check), found in groups.items()
                      if sev == severity}  # fmt: skip
            detail = ", ".join(f"{n:,} {check}" for check, n in checks.items())
            parts.append(f"{sum(checks.values()):,} {noun}" + (f" ({detail})" if detail else ""))
        return ", ".join(parts)

    def _groups(self) -> dict[tuple[str, str], list[Finding]]:
        """The findings by (severity, check): errors first, then warnings, then infos."""
        groups: dict[tuple[str, str], list[Finding]] = {}
        for f in sorted(self.findings, key=lambda f: SEVERITIES.index(f.severity)):
            groups.setdefault((f.severity, f.check), []).append(f)
        return groups

    def _outcome_lines(self, limit: int) -> list[str]:
        """The diff, the re-assignment (at most ``limit`` grids of it) and whether (and
        as what) it was committed."""
        lines = []
        if self.diff:
            lines.append("  " + _diff_text(self.diff))
        if self.reassignment:
            lines += _reassignment_text(self.reassignment, limit)
        if self.committed and self.unchanged:
            lines.append(f"  committed: nothing changed, generation {self.generation_id} "
                         "stays active (no new generation)")
        elif self.committed:
            lines.append(f"  committed: generation {self.generation_id} is active"
                         if self.generation_id is not None else "  committed")
        return lines


def _finding_text(f: Finding) -> str:
    where = f" at {f.location[0]:.6f},{f.location[1]:.6f}" if f.location else ""
    feature = f"#{f.index} " if f.index is not None else ""
    return f"  {f.severity.upper():7} {f.check}: {feature}{f.code or ''}{where}: {f.message}"


def _reassignment_text(r: dict[str, Any], limit: int) -> list[str]:
    """The re-assignment's totals, then what moved into each grid (the most first)."""
    lines = ["  re-assigned: " + ", ".join(
        _count(r[k], k.removesuffix("_moved")) for k in r if k.endswith("_moved"))]  # fmt: skip
    per_grid = sorted(r.get("per_grid", {}).items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    lines += [f"    {'outside every grid' if grid == '(none)' else 'into ' + grid}: "
              + ", ".join(_count(n, kind) for kind, n in moved.items())
              for grid, moved in per_grid[:limit]]  # fmt: skip
    if len(per_grid) > limit:
        lines.append(f"    … {_count(len(per_grid) - limit, 'more grids')} (use --json for all)")
    return lines


def _diff_text(d: dict[str, Any]) -> str:
    """One line for an area level's diff against the previous generation, or a feature
    level's upsert counts (``inserted``, ``updated``)."""
    if "previous_generation" not in d:
        return "diff: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in d.items()
                                    if isinstance(v, int))  # fmt: skip
    return (f"diff against generation {d['previous_generation']}: {d['added']} added, "
            f"{d['removed']} removed, {d['changed']} changed, {d['unchanged']} unchanged")


@dataclass
class Parents:
    """The active areas of the level above: codes and geometries (EPSG:4326)."""

    codes: np.ndarray
    geoms: np.ndarray
    clean: bool = False
    """The published generation marks this level a clean coverage (no invalid edges)."""

    def slots(self, parent_codes: np.ndarray) -> np.ndarray:
        """Where each of ``parent_codes`` is among these parents (-1: not there)."""
        return pd.Index(self.codes).get_indexer(pd.Series(parent_codes, dtype=object))

    @classmethod
    def empty(cls) -> Parents:
        return cls(np.array([], dtype=object), np.array([], dtype=object))


def error_details(report: Report) -> list[dict[str, object]]:
    """The first 100 errors of a report, for an InvalidInputError's details."""
    out: list[dict[str, object]] = [{"check": f.check, "index": f.index, "code": f.code}
                                    for f in report.findings if f.severity == "error"]
    return out[:100]


def m2(geoms: np.ndarray | Sequence[Any]) -> np.ndarray:
    """Approximate areas in m² of lon/lat geometry (local scale at each centroid)."""
    geoms = np.asarray(geoms, dtype=object)
    if geoms.size == 0:
        return np.zeros(0)
    box = shapely.bounds(geoms)
    lat = (box[:, 1] + box[:, 3]) / 2
    scale = _M_PER_DEG**2 * np.cos(np.radians(np.nan_to_num(lat)))
    return np.asarray(shapely.area(geoms)) * scale


def locations(geoms: np.ndarray) -> list[tuple[float, float] | None]:
    """A point on each geometry's surface (lon, lat), for a finding's location; None
    for a missing or empty geometry."""
    points = shapely.point_on_surface(geoms)
    xy = shapely.get_coordinates(points)
    out: list[tuple[float, float] | None] = []
    it = iter(xy.tolist())
    for p in points:
        out.append(tuple(next(it)) if p is not None and not shapely.is_empty(p) else None)  # type: ignore[arg-type]
    return out


def report_of_read(read: LayerRead, level: str) -> Report:
    """A report of ``read`` before any check: counts, bounds, CRS, encoding, fields, and
    what reading found (Z/M values dropped, one finding each; encoding and CRS warnings).
    Areas and features (:mod:`gridmap.ingest.features`) start from it alike."""
    geoms = np.asarray(read.frame.geometry.to_numpy(), dtype=object)
    report = Report(
        level=level, source=read.source, feature_count=len(read.frame),
        bounds=tuple(shapely.total_bounds(geoms).tolist()) if len(geoms) else None,  # type: ignore[arg-type]
        crs=read.crs_used, crs_note=read.crs_note, encoding=read.encoding_used,
        fields=read.fields,
    )  # fmt: skip
    codes = read.frame.code.to_numpy(dtype=object)
    add = report.findings.append
    for dropped, indexes in (("Z", read.z_dropped), ("M", read.m_dropped)):
        if len(indexes):  # one finding: a 3D file has them on every feature
            i = int(indexes[0])
            others = f" (and from {len(indexes) - 1:,} more features)" if len(indexes) > 1 \
                else ""  # fmt: skip
            add(Finding("warning", "z_m_dropped", f"{dropped} values dropped{others}", i,
                        codes[i], locations(geoms[i:i + 1])[0]))  # fmt: skip
    for message in read.warnings:
        add(Finding("warning", "crs" if message in read.crs_warnings else "encoding", message))
    return report


def check_layer(
    read: LayerRead, level: str, parents: Parents, thresholds: Thresholds | None = None,
    *, unchanged: np.ndarray | None = None, touched_parents: Sequence[str] = (),
    exact_tiling: bool = True,
) -> tuple[Report, gpd.GeoDataFrame]:
    """Run every check on ``read``; return the report and the frame to publish.

    With ``thresholds.fix`` invalid geometries are repaired with ``make_valid`` (a
    warning each) instead of being errors. ``unchanged`` (a mask over the features)
    says which features are identical — code, geometry, parent — to areas of a
    published generation that passed these checks; overlaps and containment are then
    tested around the others only (None: everything is tested), and gaps, when the
    layer is not a clean coverage inside its parents, are cut only in the parents
    around them and ``touched_parents`` (the parents of published areas that changed
    or went).

    Before GEOS looks at anything, parents whose children tile them exactly are found
    by cancelling boundary segments (:mod:`gridmap.ingest.tiling`); their children are
    proven free of overlaps, gaps and overhangs and are treated like unchanged ones.
    ``exact_tiling=False`` skips that (the tests compare both ways).
    """
    t = thresholds or Thresholds()
    frame = read.frame.copy()
    geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)
    report = report_of_read(read, level)
    codes = frame.code.to_numpy(dtype=object)
    add = report.findings.append
    if len(frame) == 0:
        add(Finding("error", "no_features", f"the file holds no features: publishing it "
                    f"would remove every active {level}"))  # fmt: skip
    geoms, usable, valid_as_read = _geometry_checks(geoms, codes, t, add, unchanged)
    frame["geometry"] = geoms
    parent_codes = frame.parent_code.to_numpy(dtype=object)
    slot = parents.slots(parent_codes)
    _code_checks(frame, level, slot, add)
    _name_checks(frame, add)
    # Features repaired by --fix are never taken as unchanged.
    changed = None if unchanged is None else ~(unchanged & valid_as_read)
    tiled = np.zeros(len(frame), dtype=bool)
    touched = list(touched_parents)
    if exact_tiling:
        tiled, untiled = _tiled_children(geoms, slot, usable, changed, parents)
        if tiled.any():
            changed = (np.ones(len(frame), dtype=bool) if changed is None else changed) & ~tiled
            touched += untiled
    # The two heaviest checks run side by side: GEOS releases the GIL.
    with ThreadPoolExecutor(max_workers=2) as pool:
        containment = pool.submit(
            _parent_containment, geoms, slot, codes,
            usable if changed is None else usable & changed, parents, t, add,
        )  # fmt: skip
        clean, checked = _overlaps(geoms[usable], codes[usable], parent_codes[usable],
                                   np.flatnonzero(usable), t, add,
                                   None if changed is None else changed[usable])  # fmt: skip
        inside = containment.result()
    contained = clean and not any(f.check in ("outside_parent", "missing_parent")
                                  for f in report.findings)  # fmt: skip
    uncovered = _gaps(geoms[usable], parent_codes[usable], slot[usable], parents, t, add,
                      coverage_clean=clean, contained=contained,
                      changed=None if changed is None else changed[usable],
                      touched=touched)  # fmt: skip
    report.coverage = {"clean": clean, "inside_parents": inside,
                       "gap_free": uncovered is not None and uncovered <= GAP_FREE_M2,
                       "scope": "full" if unchanged is None else "changed",
                       "features_checked": checked, "tiled": int(tiled.sum())}  # fmt: skip
    _slivers(geoms, codes, usable, t, add)
    report.findings.sort(key=_finding_order)
    return report, frame


def _finding_order(f: Finding) -> tuple[int, str, int, str, tuple[float, float]]:
    """Errors first, then warnings, then infos; each by check, feature, code and place
    (layer-wide findings such as gaps have no feature: the same report whichever path
    found them)."""
    index = -1 if f.index is None else f.index
    return (SEVERITIES.index(f.severity), f.check, index, f.code or "",
            f.location or (0.0, 0.0))  # fmt: skip


def _tiled_children(
    geoms: np.ndarray, slot: np.ndarray, usable: np.ndarray,
    changed: np.ndarray | None, parents: Parents,
) -> tuple[np.ndarray, list[str]]:
    """Features (of ``changed``, or all) whose parent they and their siblings tile
    exactly, and the codes of the parents tested that are not tiled.

    A proof for the children holds only if the parents themselves do not overlap:
    unless the published generation marks the parent level clean, parents with
    invalid coverage edges (GEOS, around the tested ones) prove nothing.
    """
    wanted = (slot >= 0) & (changed if changed is not None else True)
    tested = np.unique(slot[wanted])
    if tested.size == 0:
        return np.zeros(len(geoms), dtype=bool), []
    local = np.full(parents.codes.size, -1)
    local[tested] = np.arange(tested.size)
    members = usable & (slot >= 0) & (local[np.maximum(slot, 0)] >= 0)
    with ThreadPoolExecutor(max_workers=1) as pool:
        overlapping = pool.submit(_flagged_parents, parents, tested)
        tiled = tiled_parents(geoms[members], local[slot[members]], parents.geoms[tested],
                              parents_valid=True)  # checked beside it
        tiled[np.isin(tested, overlapping.result())] = False
    proven = np.zeros(parents.codes.size, dtype=bool)
    proven[tested[tiled]] = True
    children = wanted & usable & proven[np.maximum(slot, 0)]
    untiled = parents.codes[tested[~tiled]].tolist()
    if changed is None:  # parents no feature names are gaps to look for, too
        untiled += parents.codes[np.setdiff1d(np.arange(parents.codes.size), tested)].tolist()
    return children, untiled


def _flagged_parents(parents: Parents, tested: np.ndarray) -> np.ndarray:
    """Which of the ``tested`` parents are invalid polygons or have invalid coverage
    edges among all parents."""
    invalid = tested[~shapely.is_valid(parents.geoms[tested])]
    if parents.clean:
        return invalid
    tree = shapely.STRtree(parents.geoms)
    ring = np.unique(tree.query(parents.geoms[tested])[1])
    flagged = ring[_flagged(parents.geoms[ring])]
    return np.union1d(invalid, flagged[np.isin(flagged, tested)])


def _geometry_checks(
    geoms: np.ndarray, codes: np.ndarray, t: Thresholds, add: Any,
    known_valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empty, non-polygon and invalid geometries; returns (geoms, usable, valid as read).

    ``known_valid`` marks geometries byte-identical to ones a checked import already
    found valid: they are not validated again.
    """
    geoms = geoms.copy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    for i in np.flatnonzero(missing):
        add(Finding("error", "empty_geometry", "feature has no geometry", int(i), codes[i]))
    polygonal = np.isin(shapely.get_type_id(geoms), (3, 6)) & ~missing
    for i in np.flatnonzero(~polygonal & ~missing):
        add(Finding("error", "not_polygon",
                    f"{geoms[i].geom_type} is not a polygon",
                    int(i), codes[i], locations(geoms[i:i + 1])[0]))  # fmt: skip
    valid = np.ones(len(geoms), dtype=bool)
    todo = np.flatnonzero(~known_valid) if known_valid is not None else slice(None)
    valid[todo] = shapely.is_valid(geoms[todo])
    invalid = polygonal & ~valid
    for i in np.flatnonzero(invalid):
        reason = shapely.is_valid_reason(geoms[i])
        if t.fix:
            fixed = shapely.make_valid(geoms[i])
            parts = shapely.get_parts(fixed)
            polygons = parts[shapely.get_type_id(parts) == 3]
            geoms[i] = shapely.union_all(polygons) if polygons.size else fixed
            add(Finding("warning", "invalid_geometry", f"repaired by make_valid: {reason}",
                        int(i), codes[i], locations(geoms[i:i + 1])[0]))  # fmt: skip
        else:
            add(Finding("error", "invalid_geometry", f"{reason} (use --fix to repair)",
                        int(i), codes[i], locations(geoms[i:i + 1])[0]))  # fmt: skip
    valid_as_read = valid.copy()
    fixed = np.flatnonzero(invalid)
    if t.fix and fixed.size:  # only repaired geometries need validating again
        valid[fixed] = shapely.is_valid(geoms[fixed])
    usable = polygonal & valid & np.isin(shapely.get_type_id(geoms), (3, 6))
    return geoms, usable, valid_as_read


def _code_checks(frame: gpd.GeoDataFrame, level: str, slot: np.ndarray, add: Any) -> None:
    """Empty, duplicate, malformed codes; unknown parents; codes not under their parent.

    Vectorised with pandas; findings are made only for the rows that fail.
    """
    codes = pd.Series(frame.code.to_numpy(dtype=object), dtype=object)
    parent = pd.Series(frame.parent_code.to_numpy(dtype=object), dtype=object)
    length = CODE_LENGTH[level]
    empty = codes.isna().to_numpy()
    text = codes.fillna("").astype(str)
    first = pd.Series(np.arange(len(codes))).groupby(text.to_numpy()).transform("min").to_numpy()
    duplicate = ~empty & (first != np.arange(len(codes)))
    well_formed = (~empty & (text.str.len() == length).to_numpy()
                   & (text.str.isdigit() & text.str.isascii()).to_numpy())  # not ０-９
    no_parent = well_formed & parent.isna().to_numpy()
    checked = well_formed & ~no_parent
    parent_text = parent.fillna("").astype(str)
    unknown = checked & (slot < 0)
    if level == "district":
        outside = checked & (text.str[:2] != parent_text.str[:2]).to_numpy()
    else:
        # Parents of one level all have the same code length.
        prefix = CODE_LENGTH[PARENT_LEVEL[level]]
        outside = checked & (text.str[:prefix] != parent_text).to_numpy()
    failing = np.flatnonzero(empty | duplicate | ~well_formed | no_parent | unknown | outside)
    places = locations(np.asarray(frame.geometry.to_numpy(), dtype=object)[failing])
    for i, at in zip(failing.tolist(), places, strict=True):
        code = codes[i]
        if empty[i]:
            add(Finding("error", "malformed_code", "code is empty", i, None, at))
            continue
        if duplicate[i]:
            add(Finding("error", "duplicate_code", f"same code as feature #{first[i]}", i, code,
                        at))  # fmt: skip
        if not well_formed[i]:
            add(Finding("error", "malformed_code", f"{code!r} is not a {length}-digit "
                        f"{level} code{excel_hint(code)}", i, code, at))  # fmt: skip
        elif no_parent[i]:
            add(Finding("error", "missing_parent", "no parent code", i, code, at))
        else:
            _parent_findings(i, code, parent[i], level, bool(unknown[i]), bool(outside[i]), at,
                             add)  # fmt: skip


def _name_checks(frame: gpd.GeoDataFrame, add: Any) -> None:
    """Warnings for names that are missing or blank, or hold line breaks or tabs (they
    break labels on the map and rows of exported tables)."""
    names = pd.Series(frame.name.to_numpy(dtype=object), dtype=object)
    text = names.fillna("").astype(str)
    blank = (text.str.strip() == "").to_numpy()
    control = text.str.contains(r"[\x00-\x1f\x7f]", regex=True).to_numpy() & ~blank
    bad = np.flatnonzero(blank | control)
    codes = frame.code.to_numpy(dtype=object)
    places = locations(np.asarray(frame.geometry.to_numpy(), dtype=object)[bad])
    for i, at in zip(bad.tolist(), places, strict=True):
        add(Finding("warning", "bad_name", "name is empty" if blank[i] else
                    f"name {text[i]!r} holds a line break, tab or other control character",
                    i, codes[i], at))  # fmt: skip


def _parent_findings(
    i: int, code: str, parent: str, level: str, unknown: bool, outside: bool,
    at: tuple[float, float] | None, add: Any,
) -> None:
    if unknown:
        add(Finding("error", "missing_parent", f"parent {parent} is not an active "
                    f"{PARENT_LEVEL[level]}{excel_hint(parent)}", i, code, at))  # fmt: skip
    if outside:
        prefix = len(parent) if level != "district" else 2
        add(Finding("error", "code_not_under_parent",
                    f"code does not start with its parent's code {parent[:prefix]}", i, code,
                    at))  # fmt: skip


def _parent_containment(
    geoms: np.ndarray, slot: np.ndarray, codes: np.ndarray, usable: np.ndarray,
    parents: Parents, t: Thresholds, add: Any,
) -> bool:
    """Fraction of each child's area outside its parent (only where covers() fails).

    Only the features selected by ``usable`` are tested; returns whether each of
    them is covered by its parent.
    """
    idx = np.flatnonzero(usable & (slot >= 0))
    if idx.size == 0:
        return True
    parent_geoms = parents.geoms[slot[idx]]
    if idx.size > parents.geoms.size:  # each parent is tested against several children
        shapely.prepare(parents.geoms)
    uncovered = ~shapely.covers(parent_geoms, geoms[idx])
    idx, parent_geoms = idx[uncovered], parent_geoms[uncovered]
    if idx.size == 0:
        return True
    outside = shapely.difference(geoms[idx], parent_geoms)
    fraction = m2(outside) / np.maximum(m2(geoms[idx]), 1e-12)
    places = locations(outside)
    for k in np.flatnonzero(fraction > t.outside_fraction):
        i = int(idx[k])
        add(Finding("error", "outside_parent",
                    f"{fraction[k]:.1%} of the area lies outside parent {parents.codes[slot[i]]}",
                    i, codes[i], places[k], float(m2(outside[k:k + 1])[0])))  # fmt: skip
    return False


def _overlaps(
    geoms: np.ndarray, codes: np.ndarray, parent_codes: np.ndarray, index: np.ndarray,
    t: Thresholds, add: Any, changed: np.ndarray | None = None,
) -> tuple[bool, int]:
    """Overlapping pairs, looked for only around polygons the coverage check flags:
    an error for each over the threshold, an info per parent for those under it.

    Returns whether the layer is a clean coverage (then unions can take the fast
    path) and how many polygons the coverage check looked at.
    """
    if geoms.size < 2:
        return True, int(geoms.size)
    tree = None
    if changed is None:
        suspects, looked = _flagged(geoms), geoms.size
    elif not changed.any():
        return True, 0
    else:
        tree = shapely.STRtree(geoms)
        suspects, looked = _flagged_around(tree, geoms, changed)
    if suspects.size == 0:
        return True, int(looked)
    tree = tree or shapely.STRtree(geoms)
    left, right = tree.query(geoms[suspects], predicate="intersects")
    left = suspects[left]
    keep = left < right
    left, right = left[keep], right[keep]
    if left.size == 0:
        return False, int(looked)
    shared = shapely.intersection(geoms[left], geoms[right])
    area = m2(shared)
    big = np.flatnonzero(area > t.overlap_m2)
    for k, place in zip(big.tolist(), locations(shared[big]), strict=True):
        a, b = int(left[k]), int(right[k])
        add(Finding("error", "overlap",
                    f"overlaps feature #{index[b]} ({codes[b]}) by {area[k]:,.1f} m²",
                    int(index[a]), codes[a], place, float(area[k])))  # fmt: skip
    small = np.flatnonzero((area > 0) & (area <= t.overlap_m2))
    pairs = [f"#{index[left[k]]} and #{index[right[k]]}" for k in small.tolist()]
    _note_under_threshold("overlap", ("overlap(s) between its children", " in all"),
                          shared[small], area[small], parent_codes[left[small]], t.overlap_m2,
                          add, pairs)  # fmt: skip
    return False, int(looked)


def _flagged(geoms: np.ndarray) -> np.ndarray:
    """Indexes of the polygons with invalid coverage edges (GEOS CoverageValidator)."""
    edges = shapely.coverage_invalid_edges(geoms)
    return np.flatnonzero(~shapely.is_empty(edges) & ~shapely.is_missing(edges))


def _flagged_around(
    tree: shapely.STRtree, geoms: np.ndarray, changed: np.ndarray
) -> tuple[np.ndarray, int]:
    """The polygons a full coverage check would flag, when only ``changed`` ones differ
    from a clean coverage; and how many polygons were looked at.

    GEOS validates each polygon against the polygons whose envelopes touch its own.
    A polygon whose envelope touches no changed one sees only unchanged neighbours,
    as when the layer was found clean: it cannot be flagged. The others (``near``) are
    validated with all their envelope neighbours present (``ring``), so their flags
    are exactly a full check's.
    """
    near = np.unique(tree.query(geoms[changed])[1])
    ring = np.unique(tree.query(geoms[near])[1])
    flagged = ring[_flagged(geoms[ring])]
    return flagged[np.isin(flagged, near)], int(ring.size)


def _gaps(
    geoms: np.ndarray, parent_codes: np.ndarray, slot: np.ndarray, parents: Parents,
    t: Thresholds, add: Any,
    *, coverage_clean: bool, contained: bool, changed: np.ndarray | None = None,
    touched: Sequence[str] = (),
) -> float | None:
    """Parts of the parents' area that no child covers.

    When children neither overlap nor leave their parent, a parent's uncovered area is
    its area minus its children's areas: only parents where that exceeds the threshold
    are cut exactly (difference with the union of their children); returns the largest
    uncovered area of a parent (m²). Otherwise one union difference over the whole
    layer — or, with ``changed`` (the rest as published by a checked import, which left
    no parent with more than GAP_FREE_M2 uncovered), over the parents around the
    changes only; returns None.
    """
    if parents.geoms.size == 0:
        return None
    largest = None
    if contained:
        holes, largest = _gaps_by_parent(geoms, slot, parents, t)
    elif changed is not None and t.gap_m2 >= GAP_FREE_M2:
        holes = _gaps_around(geoms, changed, parent_codes, parents, touched)
    else:
        # coverage_union_all is linear-time but only correct on a clean coverage.
        children = (shapely.coverage_union_all(geoms) if coverage_clean
                    else shapely.union_all(geoms))  # fmt: skip
        parent_union = shapely.union_all(parents.geoms)
        holes = shapely.get_parts(shapely.difference(parent_union, children))
    holes = holes[shapely.get_type_id(holes) == 3] if holes.size else holes
    if holes.size == 0:
        return largest
    holes, owners = _per_parent(holes, parents)
    area = m2(holes)
    big = area > t.gap_m2
    _note_under_threshold("gap", ("gap(s)", " of the parent covered by no feature"),
                          holes[~big], area[~big], parents.codes[owners[~big]], t.gap_m2,
                          add)  # fmt: skip
    holes, owners, area = holes[big], owners[big], area[big]
    for k, place in enumerate(locations(holes)):
        parent = parents.codes[owners[k]]
        add(Finding("error", "gap", f"{area[k]:,.1f} m² of parent {parent} covered by no "
                    "feature", None, parent, place, float(area[k])))  # fmt: skip
    return largest


def _note_under_threshold(
    check: str, words: tuple[str, str], pieces: np.ndarray, area: np.ndarray,
    parent_codes: np.ndarray, threshold: float, add: Any, between: Sequence[str] = (),
) -> None:
    """One info finding per parent for the ``pieces`` (gaps or overlaps) under their
    ``threshold``: how many, their total area, and where the largest is (``words``: what
    they are, what their area is; ``between``: the features each piece lies between).
    Parents where they add up to NOTED_M2 or less are left out: re-projection noise."""
    if area.size == 0:
        return
    parents = pd.Series(parent_codes, dtype=object).fillna("").to_numpy()  # "": none given
    by_parent = pd.DataFrame({"parent": parents, "area": area}).groupby("parent").area
    summary = pd.DataFrame({"count": by_parent.size(), "total": by_parent.sum(),
                            "largest": by_parent.idxmax()})  # fmt: skip
    summary = summary[summary.total > NOTED_M2]
    places = locations(pieces[summary.largest.to_numpy(dtype=int)])
    for (parent, row), place in zip(summary.iterrows(), places, strict=True):
        k, total = int(row["largest"]), float(row["total"])
        pair = f", between {between[k]}" if between else ""
        add(Finding("info", check, f"{int(row['count']):,} {words[0]} under the {threshold:g} "
                    f"m² threshold: {total:,.2f} m²{words[1]}; the largest ({area[k]:,.2f} m²"
                    f"{pair}) is here", None, parent or None, place, total))  # fmt: skip


def _per_parent(holes: np.ndarray, parents: Parents) -> tuple[np.ndarray, np.ndarray]:
    """The holes cut along the parents' boundaries: polygons each inside one parent,
    and that parent's position (a gap across two parents is two findings)."""
    tree = shapely.STRtree(parents.geoms)
    hole, owner = tree.query(holes, predicate="intersects")
    pieces = shapely.intersection(holes[hole], parents.geoms[owner])
    parts, source = shapely.get_parts(pieces, return_index=True)
    polygonal = shapely.get_type_id(parts) == 3
    return parts[polygonal], owner[source[polygonal]]


def _gaps_around(
    geoms: np.ndarray, changed: np.ndarray, parent_codes: np.ndarray, parents: Parents,
    touched: Sequence[str],
) -> np.ndarray:
    """Holes in the parents a change can affect, and the parents touching those.

    Elsewhere children and parents are as published, which left no parent with more
    than GAP_FREE_M2 uncovered: a hole reaching out of this region loses at most that.
    """
    tree = shapely.STRtree(parents.geoms)
    named = pd.Index(parents.codes).isin([*parent_codes[changed].tolist(), *touched])
    reached = tree.query(geoms[changed], predicate="intersects")[1]
    affected = np.union1d(np.flatnonzero(named), reached)
    if affected.size == 0:
        return np.array([], dtype=object)
    region = np.unique(tree.query(parents.geoms[affected], predicate="intersects")[1])
    area = shapely.union_all(parents.geoms[region])
    children = shapely.STRtree(geoms).query(area, predicate="intersects")
    return shapely.get_parts(shapely.difference(area, shapely.union_all(geoms[children])))


def _gaps_by_parent(
    geoms: np.ndarray, slot: np.ndarray, parents: Parents, t: Thresholds
) -> tuple[np.ndarray, float]:
    """Holes inside parents whose area is not accounted for by their children (more than
    the gap threshold or NOTED_M2), and the largest such area (m²)."""
    known = slot >= 0
    covered = np.bincount(slot[known], weights=shapely.area(geoms[known]),
                          minlength=parents.codes.size)  # fmt: skip
    missing_deg = shapely.area(parents.geoms) - covered
    scale = m2(parents.geoms) / np.maximum(shapely.area(parents.geoms), 1e-30)
    missing = missing_deg * scale
    suspects = np.flatnonzero(missing > min(t.gap_m2, NOTED_M2))  # gaps under it noted too
    pieces = []
    for p in suspects:
        children = geoms[known][slot[known] == p]
        cover = shapely.union_all(children) if children.size else None
        hole = parents.geoms[p] if cover is None else shapely.difference(parents.geoms[p], cover)
        pieces.append(shapely.get_parts(hole))
    holes = np.concatenate(pieces) if pieces else np.array([], dtype=object)
    return holes, float(missing.max(initial=0.0))


def _slivers(
    geoms: np.ndarray, codes: np.ndarray, usable: np.ndarray, t: Thresholds, add: Any
) -> None:
    idx = np.flatnonzero(usable)
    area = m2(geoms[idx])
    for k in np.flatnonzero(area < t.sliver_m2):
        i = int(idx[k])
        add(Finding("warning", "sliver", f"area {area[k]:.3f} m² is under {t.sliver_m2} m²",
                    i, codes[i], locations(geoms[i:i + 1])[0], float(area[k])))  # fmt: skip


def _count(n: int, plural: str) -> str:
    """``n`` and the noun, singular for one: "1 facility", "2 facilities"."""
    if n != 1:
        return f"{n:,} {plural}"
    return f"1 {plural[:-3] + 'y' if plural.endswith('ies') else plural.removesuffix('s')}"
