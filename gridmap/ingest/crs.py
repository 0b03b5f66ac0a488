"""Coordinate reference systems of imported files: which one a file is read in (its own,
``--source-crs``, or plain longitude/latitude), how it is named in the report, the
hints for files with none (Gauss-Kruger zones), and the warning for datums PROJ can
only roughly shift to CGCS2000 (Xian 1980, Beijing 1954)."""

from __future__ import annotations

import warnings

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.aoi import AreaOfInterest
from pyproj.exceptions import CRSError, ProjError
from pyproj.transformer import TransformerGroup

from gridmap.errors import InvalidInputError

STORAGE_CRS = "EPSG:4326"


def choose_crs(
    file_crs: CRS | None, prj_problem: str | None, source_crs: str | None,
    geoms: np.ndarray, label: str,
) -> tuple[CRS, str, str]:
    """The CRS to read the coordinates in, how to show it, and where it came from.

    ``--source-crs`` wins over the file's own CRS, as ogr2ogr's ``-s_srs`` does: it is
    how a wrong ``.prj`` is corrected.
    """
    if source_crs:
        crs = _parse_crs(source_crs, label)
        if file_crs is not None:
            note = f"given by --source-crs, overriding the file's {_crs_label(file_crs)}"
        elif prj_problem:
            note = f"given by --source-crs; the file's .prj is unreadable: {prj_problem}"
        else:
            note = "given by --source-crs (the file has none)"
        return _transformable(crs, "--source-crs", label), _crs_label(crs), note
    if prj_problem:
        raise InvalidInputError(
            f"{label}: unreadable .prj: {prj_problem}; fix the .prj, or give the CRS with "
            f"--source-crs ({_crs_hint(geoms)})",
            details=[{"file": label, "problem": "unreadable_prj", "reason": prj_problem}],
        )
    if file_crs is not None:
        crs = _transformable(_known_crs(file_crs), "the file's", label)
        return crs, _crs_label(crs), "read from the file"
    xmin, ymin, _, _ = shapely.total_bounds(geoms)
    if _looks_lonlat(geoms):
        note = "assumed EPSG:4326: the file has no CRS and its coordinates are lon/lat"
        return CRS.from_user_input(STORAGE_CRS), STORAGE_CRS, note
    raise InvalidInputError(
        f"{label}: the file has no CRS (.prj) and its coordinates ({xmin:.0f}, {ymin:.0f}) are "
        f"not longitude/latitude; pass --source-crs ({_crs_hint(geoms)})",
        details=[{"file": label, "problem": "no_crs"}],
    )


SAME_AS_STORAGE_DATUMS = ("World Geodetic System 1984", "China 2000")
"""Datums (name prefixes, as PROJ names them) taken as the storage CRS's: CGCS2000 and
WGS 84 differ by centimetres."""


def datum_warnings(crs: CRS, shown: str, bounds: np.ndarray) -> list[str]:
    """A warning when ``crs`` is on another datum (Xian 1980, Beijing 1954, …) that PROJ
    can only take to WGS 84 by a ballpark transformation (no datum shift) where the
    features lie (``bounds``, lon/lat): they land tens of metres, up to ~100 m, off.

    Asked of PROJ rather than listed by EPSG code: any CRS on such a datum is caught,
    and one with a real datum shift (a TOWGS84 in its .prj, or an EPSG transformation
    covering the area) is not."""
    geodetic = crs.geodetic_crs
    datum = geodetic.datum.name if geodetic is not None and geodetic.datum else ""
    if not datum or datum.startswith(SAME_AS_STORAGE_DATUMS):
        return []
    x0, y0, x1, y1 = (float(v) for v in bounds)
    area = AreaOfInterest(x0, y0, x1, y1)
    # pyproj's stub names its private twin of pyproj.aoi.AreaOfInterest, the public one
    group = TransformerGroup(crs, STORAGE_CRS, always_xy=True,
                             area_of_interest=area)  # type: ignore[arg-type]
    best = next(iter(group.transformers), None)
    if best is not None and not any(op.has_ballpark_transformation
                                    for op in best.operations or ()):  # fmt: skip
        return []
    return [f"{shown} is on the {datum} datum, which PROJ converts to CGCS2000/WGS 84 "
            "without a datum shift (a ballpark transformation): positions may be off by "
            "tens of metres, up to ~100 m. Convert the data to CGCS2000 first with a "
            "surveyed 7-parameter transformation (e.g. the local surveying bureau's), "
            "then import it"]  # fmt: skip


def _looks_lonlat(geoms: np.ndarray) -> bool:
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    return bool(-180 <= xmin <= xmax <= 180 and -90 <= ymin <= ymax <= 90)


def _parse_crs(text: str, label: str) -> CRS:
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise InvalidInputError(
            f"{label}: unknown CRS {text!r} given by --source-crs ({exc}); use an EPSG code "
            "such as EPSG:4544", details=[{"field": "source_crs", "value": text}],
        ) from None  # fmt: skip


def _known_crs(crs: CRS) -> CRS:
    """The EPSG CRS ``crs`` matches (an ESRI .prj's Gauss_Kruger is EPSG's
    transverse Mercator), else ``crs`` itself."""
    epsg = crs.to_epsg(min_confidence=70)
    return CRS.from_epsg(epsg) if epsg else crs


def _transformable(crs: CRS, origin: str, label: str) -> CRS:
    """``crs`` if PROJ can take its coordinates to EPSG:4326, else InvalidInputError
    (a LOCAL_CS — an engineering CRS with no place on the earth — cannot be)."""
    try:
        Transformer.from_crs(crs, STORAGE_CRS, always_xy=True)
    except ProjError as exc:
        why = ("a local engineering CRS (LOCAL_CS), not tied to any place on the earth"
               if crs.is_engineering else str(exc))  # fmt: skip
        raise InvalidInputError(
            f"{label}: {origin} CRS {_crs_label(crs)} cannot be converted to longitude/"
            f"latitude: {why}; give the real CRS with --source-crs",
            details=[{"file": label, "problem": "crs_not_transformable"}],
        ) from None
    return crs


def _crs_label(crs: CRS) -> str:
    """``EPSG:4545``, another authority's code, or the CRS's name and PROJ string —
    never a whole WKT."""
    epsg = crs.to_epsg(min_confidence=70)
    if epsg:
        return f"EPSG:{epsg}"
    authority = crs.to_authority(min_confidence=70)
    if authority:
        return ":".join(authority)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "you will likely lose important projection information"
        try:
            short = crs.to_proj4().replace(" +no_defs", "").replace(" +type=crs", "")
        except CRSError:
            short = crs.type_name
    return f"{crs.name} ({short})"


GK_CENTRAL_MERIDIANS = range(75, 136, 3)
"""Central meridians (°E) of the CGCS2000 3-degree Gauss-Kruger zones covering China."""


def gauss_kruger_epsg(central_meridian: int, *, zone_prefix: bool = False) -> int:
    """EPSG code of CGCS2000 / 3-degree Gauss-Kruger with this central meridian (°E).

    Eastings without a zone prefix (500 000 m on the meridian): EPSG:4534 (CM 75E) to
    EPSG:4554 (CM 135E). With the zone number in front (zone = meridian / 3):
    EPSG:4513 (zone 25) to EPSG:4533 (zone 45).

    Raises
    ------
    ValueError
        ``central_meridian`` is not one of :data:`GK_CENTRAL_MERIDIANS`.
    """
    if central_meridian not in GK_CENTRAL_MERIDIANS:
        raise ValueError(f"no CGCS2000 3-degree zone has central meridian {central_meridian}E")
    step = GK_CENTRAL_MERIDIANS.index(central_meridian)
    return (4513 if zone_prefix else 4534) + step


def _crs_hint(geoms: np.ndarray) -> str:
    """Which --source-crs the coordinates suggest, named as PROJ names them."""
    if _looks_lonlat(geoms):
        return "the coordinates look like longitude/latitude: EPSG:4326 or EPSG:4490?"
    xmin, _, xmax, _ = shapely.total_bounds(geoms)
    zone = int(xmin // 1_000_000)
    if zone == int(xmax // 1_000_000) and zone * 3 in GK_CENTRAL_MERIDIANS:
        code = gauss_kruger_epsg(zone * 3, zone_prefix=True)
        return (f"the eastings start with zone number {zone}: EPSG:{code}, "
                f"{CRS.from_epsg(code).name}?")  # fmt: skip
    code = gauss_kruger_epsg(105)
    return (f"e.g. EPSG:{code}, {CRS.from_epsg(code).name}: CGCS2000 3-degree Gauss-Kruger "
            "has one code per central meridian, EPSG:4534 (CM 75E) to EPSG:4554 (CM 135E); "
            "or EPSG:3857 for Web Mercator")
