"""A deterministic synthetic city around Chongqing, and the files GIS staff would hand over.

``generate_city(grids, seed)`` builds districts → streets → communities → grids in
Chongqing's proportions (38 : 1,031 : 11,000 : 65,000), with buildings, households,
persons, facilities and grid workers. Same seed, same city. ``write_files`` writes
shapefiles, a GeoPackage and CSVs; ``read_files`` reads them back.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, fields
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from sample_data._divisions import (
    CITY_CODE,
    EXTENT,
    PRECISION,
    build_division,
    division_frame,
    level_counts,
    reading_order,
)
from sample_data._features import make_buildings, make_facilities
from sample_data._people import REFERENCE_DATE, make_households, make_persons, make_workers

__all__ = [
    "AREA_LEVELS",
    "CITY_CODE",
    "EXTENT",
    "PRECISION",
    "REFERENCE_DATE",
    "SampleCity",
    "generate_city",
    "level_counts",
    "read_files",
    "reading_order",
    "write_files",
]

AREA_LEVELS = ("city", "district", "street", "community", "grid")
CRS = "EPSG:4326"
_STREAMS = ("outline", "seeds", "groups", "names", "buildings", "people", "facilities", "workers")
_SHAPEFILE_LEVELS = ("district", "street", "community", "grid")
_BUILDING_FIELDS = {"code": "CODE", "address": "ADDRESS", "floors": "FLOORS", "use": "USE",
                    "grid_code": "GRID"}  # fmt: skip
_FACILITY_FIELDS = {"code": "CODE", "major_code": "MAJOR", "minor_code": "MINOR",
                    "name": "NAME", "state": "STATE", "grid_code": "GRID",
                    "owner_department_code": "OWNER",
                    "maintainer_department_code": "MAINTAINER"}  # fmt: skip
_CSV_TEXT = {"code": str, "building_code": str, "room": str, "household_code": str,
             "id_number": str, "phone": str, "grid_code": str}  # fmt: skip


@dataclass
class SampleCity:
    """A synthetic city: areas, buildings, households, persons, facilities and workers.

    All geometry is in EPSG:4326. ``areas`` holds every level (city first, then
    district, street, community and grid, each sorted by code).
    """

    areas: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    households: pd.DataFrame
    persons: pd.DataFrame
    facilities: gpd.GeoDataFrame
    workers: pd.DataFrame

    def level(self, level: str) -> gpd.GeoDataFrame:
        """The areas of one level (``city``, ``district``, ``street``, ``community``, ``grid``)."""
        if level not in AREA_LEVELS:
            raise ValueError(f"unknown level {level!r}; expected one of {AREA_LEVELS}")
        return self.areas[self.areas.level == level]

    def counts(self) -> dict[str, int]:
        """Number of rows per table and per area level."""
        out = {lv: int((self.areas.level == lv).sum()) for lv in AREA_LEVELS}
        out.update({f.name: len(getattr(self, f.name)) for f in fields(self) if f.name != "areas"})
        return out


def generate_city(grids: int = 6500, seed: int = 42) -> SampleCity:
    """Generate a synthetic city of ``grids`` grids around Chongqing.

    Parameters
    ----------
    grids : int, default 6500
        Number of grids; the other levels follow Chongqing's proportions (65,000 grids
        is the real city). The extent is fixed: more grids means smaller grids.
    seed : int, default 42
        Random seed; the same seed and grid count always give the same city.

    Returns
    -------
    SampleCity
        Areas, buildings (~3 per grid), households, persons (~5 per building),
        facilities (~3 per grid) and workers (at least one per grid).

    Examples
    --------
    >>> city = generate_city(grids=300, seed=7)
    >>> city.counts()["grid"]
    300
    """
    rngs = {
        name: np.random.default_rng(stream)
        for name, stream in zip(_STREAMS, np.random.SeedSequence(seed).spawn(len(_STREAMS)),
                                strict=True)
    }  # fmt: skip
    division = build_division(grids, rngs)
    areas = division_frame(division)
    grid_rows = areas[areas.level == "grid"].reset_index(drop=True)
    buildings = make_buildings(
        rngs["buildings"], grid_rows, areas[areas.level == "community"], _address_prefixes(areas)
    )
    households = make_households(rngs["people"], buildings)
    district = households.building_code.str.slice(0, 6).to_numpy()
    return SampleCity(
        areas=areas,
        buildings=gpd.GeoDataFrame(buildings, geometry="geometry", crs=CRS),
        households=households,
        persons=make_persons(rngs["people"], households, district),
        facilities=gpd.GeoDataFrame(
            make_facilities(rngs["facilities"], grid_rows), geometry="geometry", crs=CRS
        ),
        workers=make_workers(rngs["workers"], grid_rows),
    )


def _address_prefixes(areas: pd.DataFrame) -> pd.Series:
    """重庆市<district><street> for every community code."""
    names = areas.set_index("code").name
    communities = areas[areas.level == "community"]
    street = communities.parent_code.to_numpy()
    district = np.array([c[:6] for c in street], dtype=object)
    city = names.loc[CITY_CODE]
    prefix = city + names.loc[district].to_numpy() + names.loc[street].to_numpy()
    return pd.Series(prefix, index=communities.code.to_numpy())


def write_files(city: SampleCity, out_dir: Path) -> dict[str, Path]:
    """Write the city as GIS staff would hand it over.

    One ESRI Shapefile per area level (``district.shp`` … ``grid.shp``; fields CODE,
    NAME, PARENT; UTF-8 with a ``.cpg``), ``buildings.shp`` and ``facilities.shp``; one
    GeoPackage ``city.gpkg`` with every layer; and CSVs for households, persons and
    workers (UTF-8; care tags joined by ``;``).

    Parameters
    ----------
    city : SampleCity
        The city to write.
    out_dir : pathlib.Path
        Folder to write into (created if missing; existing files are overwritten).

    Returns
    -------
    dict[str, pathlib.Path]
        Path of every file written, keyed by layer (``grid``, ``buildings``, ``gpkg``…).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for level in _SHAPEFILE_LEVELS:
        frame = city.level(level)[["code", "name", "parent_code", "geometry"]]
        frame = frame.rename(columns={"code": "CODE", "name": "NAME", "parent_code": "PARENT"})
        paths[level] = _write_shapefile(frame, out_dir / f"{level}.shp")
    paths["buildings"] = _write_shapefile(
        city.buildings.rename(columns=_BUILDING_FIELDS), out_dir / "buildings.shp"
    )
    paths["facilities"] = _write_shapefile(
        city.facilities.rename(columns=_FACILITY_FIELDS), out_dir / "facilities.shp"
    )
    paths["gpkg"] = _write_geopackage(city, out_dir / "city.gpkg")
    for name in ("households", "persons", "workers"):
        paths[name] = _write_csv(getattr(city, name), out_dir / f"{name}.csv")
    return paths


def _use_arrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def _write_shapefile(frame: gpd.GeoDataFrame, path: Path) -> Path:
    _remove_shapefile(path)
    pyogrio.write_dataframe(
        frame, path, driver="ESRI Shapefile", encoding="UTF-8", use_arrow=_use_arrow()
    )
    return path


def _remove_shapefile(path: Path) -> None:
    for suffix in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
        path.with_suffix(suffix).unlink(missing_ok=True)


def _write_geopackage(city: SampleCity, path: Path) -> Path:
    path.unlink(missing_ok=True)
    layers: dict[str, gpd.GeoDataFrame] = {lv: city.level(lv) for lv in AREA_LEVELS}
    layers.update(buildings=city.buildings, facilities=city.facilities)
    for layer, frame in layers.items():
        pyogrio.write_dataframe(
            frame.reset_index(drop=True),
            path,
            layer=layer,
            driver="GPKG",
            promote_to_multi=layer in AREA_LEVELS,
            use_arrow=_use_arrow(),
        )
    return path


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame = frame.copy()
    if "care_tags" in frame:
        frame["care_tags"] = [";".join(tags) for tags in frame.care_tags]
    if "birth_date" in frame:
        frame["birth_date"] = frame.birth_date.dt.strftime("%Y-%m-%d")
    frame.to_csv(path, index=False, encoding="utf-8")
    return path


def read_files(out_dir: Path) -> SampleCity:
    """Read a city written by :func:`write_files` (the GeoPackage and the CSVs).

    Parameters
    ----------
    out_dir : pathlib.Path
        Folder given to :func:`write_files`.

    Returns
    -------
    SampleCity
        The same tables, columns and row order as the city that was written.
    """
    out_dir = Path(out_dir)
    gpkg = out_dir / "city.gpkg"
    if not gpkg.exists():
        raise FileNotFoundError(f"{gpkg} not found: write the city first (write_files)")
    areas = pd.concat([_read_layer(gpkg, lv) for lv in AREA_LEVELS], ignore_index=True)
    areas["parent_code"] = areas.parent_code.astype(object).where(areas.parent_code.notna(), None)
    return SampleCity(
        areas=gpd.GeoDataFrame(areas, geometry="geometry", crs=CRS),
        buildings=_read_layer(gpkg, "buildings"),
        households=_read_csv(out_dir / "households.csv"),
        persons=_read_csv(out_dir / "persons.csv"),
        facilities=_read_layer(gpkg, "facilities"),
        workers=_read_csv(out_dir / "workers.csv"),
    )


def _read_layer(path: Path, layer: str) -> gpd.GeoDataFrame:
    frame = pyogrio.read_dataframe(path, layer=layer, use_arrow=_use_arrow())
    return frame.rename_geometry("geometry") if frame.geometry.name != "geometry" else frame


def _read_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=_CSV_TEXT, keep_default_na=False, encoding="utf-8-sig")
    if "phone" in frame:
        frame["phone"] = frame.phone.where(frame.phone != "", None)
    if "care_tags" in frame:
        frame["care_tags"] = [tags.split(";") if tags else [] for tags in frame.care_tags]
    if "birth_date" in frame:
        frame["birth_date"] = pd.to_datetime(frame.birth_date, format="%Y-%m-%d").astype(
            "datetime64[ns]"
        )
    return frame
