"""The reader refuses what it cannot read with one clear error naming the file and the
problem (never a traceback), and reads what it can the way a GIS would: files written
here, each crafted to carry one problem found by the import audit."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
from pyproj import CRS

from gridmap.errors import InvalidInputError
from gridmap.ingest.crs import gauss_kruger_epsg
from gridmap.ingest.reader import ReadOptions, read_layer
from sample_data.city import SampleCity


def _grids(city: SampleCity, n: int = 5) -> gpd.GeoDataFrame:
    frame = city.level("grid").iloc[:n][["code", "name", "parent_code", "geometry"]]
    return frame.reset_index(drop=True).rename(columns={"parent_code": "parent"})


def _geojson(frame: gpd.GeoDataFrame, path: Path, encoding: str = "utf-8") -> Path:
    path.write_bytes(json.dumps(json.loads(frame.to_json()), ensure_ascii=False)
                     .encode(encoding))  # fmt: skip
    return path


# --- text encoding -------------------------------------------------------------------------


def test_geojson_that_is_not_utf8_is_refused_or_read_with_encoding(
    tmp_path: Path, sample_city: SampleCity
) -> None:
    frame = _grids(sample_city)
    gbk = _geojson(frame, tmp_path / "grid.geojson", "gbk")
    with pytest.raises(InvalidInputError, match=r"grid.geojson: text in grid.geojson is not "
                       r"valid UTF-8 \(GeoJSON text must be UTF-8 \(RFC 7946\)\).*--encoding"):
        read_layer(gbk, "grid")
    read = read_layer(gbk, "grid", ReadOptions(encoding="GBK"))
    assert read.encoding_used == "GBK" and read.frame.name.tolist() == frame.name.tolist()
    utf8 = _geojson(frame, tmp_path / "utf8.geojson")
    read = read_layer(utf8, "grid", ReadOptions(encoding="GBK"))
    assert read.encoding_used == "UTF-8" and read.frame.name.tolist() == frame.name.tolist()
    assert read.warnings and "--encoding GBK ignored" in read.warnings[0]


def test_geojson_with_gbk_field_names_is_refused(tmp_path: Path, sample_city: SampleCity) -> None:
    frame = _grids(sample_city).rename(columns={"code": "代码", "name": "名称"})
    gbk = _geojson(frame, tmp_path / "grid.geojson", "gbk")
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        read_layer(gbk, "grid")
    read = read_layer(gbk, "grid", ReadOptions(encoding="GBK"))
    assert read.fields["code"] == "代码" and read.frame.code.tolist() == frame["代码"].tolist()


# --- CRS -----------------------------------------------------------------------------------

LOCAL_CS = 'LOCAL_CS["Unknown",UNIT["Meter",1.0]]'


def _shapefile(frame: gpd.GeoDataFrame, folder: Path, prj: str | None = None) -> Path:
    """``frame`` as ``folder/grid.shp``; ``prj`` replaces the .prj's text (None: as written)."""
    folder.mkdir(exist_ok=True)
    shp = folder / "grid.shp"
    pyogrio.write_dataframe(frame, shp)
    if prj is not None:
        (folder / "grid.prj").write_text(prj)
    return shp


def _drift(read: object, frame: gpd.GeoDataFrame) -> float:
    """Largest distance (degrees) between what was read and ``frame`` in EPSG:4326."""
    geoms = read.frame.geometry.to_numpy()  # type: ignore[attr-defined]
    return float(shapely.hausdorff_distance(geoms, frame.geometry.to_numpy()).max())


def test_local_cs_prj_is_refused_and_source_crs_overrides_it(
    tmp_path: Path, sample_city: SampleCity
) -> None:
    frame = _grids(sample_city)
    shp = _shapefile(frame.to_crs(4545), tmp_path / "local", prj=LOCAL_CS)
    with pytest.raises(InvalidInputError, match=r"grid.shp: the file's CRS .* cannot be "
                       r"converted to longitude/latitude: a local engineering CRS \(LOCAL_CS\)"
                       r".*--source-crs"):  # fmt: skip
        read_layer(shp, "grid")
    read = read_layer(shp, "grid", ReadOptions(source_crs="EPSG:4545"))
    assert read.crs_used == "EPSG:4545"
    assert read.crs_note.startswith("given by --source-crs, overriding the file's")
    assert _drift(read, frame) < 1e-6


def test_source_crs_overrides_a_wrong_prj(tmp_path: Path, sample_city: SampleCity) -> None:
    frame = _grids(sample_city)
    wrong = frame.to_crs(4545).set_crs(4544, allow_override=True)  # CM 108E data, CM 105E .prj
    shp = _shapefile(wrong, tmp_path / "wrong")
    assert _drift(read_layer(shp, "grid"), frame) > 1  # believed: three degrees off
    read = read_layer(shp, "grid", ReadOptions(source_crs="EPSG:4545"))
    assert (read.crs_used, read.crs_note) == (
        "EPSG:4545", "given by --source-crs, overriding the file's EPSG:4544")
    assert _drift(read, frame) < 1e-6


def test_unreadable_prj_is_named_not_taken_for_no_crs(
    tmp_path: Path, sample_city: SampleCity
) -> None:
    frame = _grids(sample_city)
    for folder, data in (("gk", frame.to_crs(4545)), ("lonlat", frame)):
        shp = _shapefile(data, tmp_path / folder, prj="this is not a crs")
        with pytest.raises(InvalidInputError, match=r"unreadable \.prj: grid\.prj: .*"
                           r"--source-crs") as caught:  # fmt: skip
            read_layer(shp, "grid")
        assert "no CRS" not in caught.value.message
    assert "EPSG:4326" in caught.value.message  # the lon/lat file is told which
    read = read_layer(tmp_path / "gk" / "grid.shp", "grid", ReadOptions(source_crs="EPSG:4545"))
    assert read.crs_used == "EPSG:4545" and "the file's .prj is unreadable" in read.crs_note
    assert _drift(read, frame) < 1e-6


def test_crs_without_epsg_code_is_shown_by_name_and_proj_string(
    tmp_path: Path, sample_city: SampleCity
) -> None:
    frame = _grids(sample_city)
    custom = CRS.from_proj4("+proj=tmerc +lat_0=0 +lon_0=106.5 +k=1 +x_0=500000 +y_0=0 "
                            "+ellps=GRS80 +units=m")  # fmt: skip
    esri = custom.to_wkt("WKT1_ESRI").replace('PROJCS["unknown"', 'PROJCS["GK_CM_106d30m"')
    shp = _shapefile(frame.to_crs(custom), tmp_path / "cm106", prj=esri)
    read = read_layer(shp, "grid")
    assert "[" not in read.crs_used and len(read.crs_used) < 120
    assert read.crs_used.startswith("GK_CM_106d30m (+proj=tmerc")
    assert "+lon_0=106.5" in read.crs_used
    assert _drift(read, frame) < 1e-6


@pytest.mark.parametrize("central_meridian", range(75, 136, 3))
def test_gauss_kruger_codes_are_pyprojs(central_meridian: int) -> None:
    plain = CRS.from_epsg(gauss_kruger_epsg(central_meridian))
    assert plain.name == f"CGCS2000 / 3-degree Gauss-Kruger CM {central_meridian}E"
    prefixed = CRS.from_epsg(gauss_kruger_epsg(central_meridian, zone_prefix=True))
    assert prefixed.name == f"CGCS2000 / 3-degree Gauss-Kruger zone {central_meridian // 3}"


def test_no_crs_hint_names_the_right_zone(tmp_path: Path, sample_city: SampleCity) -> None:
    frame = _grids(sample_city)
    shp = _shapefile(frame.to_crs(4544).set_crs(None, allow_override=True), tmp_path / "cm")
    with pytest.raises(InvalidInputError, match="no CRS") as caught:
        read_layer(shp, "grid")
    assert "EPSG:4544, CGCS2000 / 3-degree Gauss-Kruger CM 105E" in caught.value.message
    assert "4545 (CGCS2000 / 3-degree GK CM 105E)" not in caught.value.message
    zoned = frame.to_crs(4523).set_crs(None, allow_override=True)  # zone 35 = CM 105E
    with pytest.raises(InvalidInputError, match="zone number 35: EPSG:4523, CGCS2000 / "
                       "3-degree Gauss-Kruger zone 35"):  # fmt: skip
        read_layer(_shapefile(zoned, tmp_path / "zone"), "grid")


# --- what a file holds ---------------------------------------------------------------------


def test_macos_zip_metadata_is_ignored(tmp_path: Path, sample_city: SampleCity) -> None:
    """A zip made in the macOS Finder holds ``__MACOSX/…/._name`` AppleDouble files."""
    frame = _grids(sample_city)
    shp = _shapefile(frame, tmp_path / "src")
    archive = tmp_path / "网格.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for part in sorted(shp.parent.iterdir()):
            z.write(part, f"网格/网格{part.suffix}")
            z.writestr(f"__MACOSX/网格/._网格{part.suffix}", b"\x00\x05\x16\x07Mac OS X")
    read = read_layer(archive, "grid")
    assert read.frame.code.tolist() == frame.code.tolist()
    folder = tmp_path / "copied"  # a folder copied from a Mac to a FAT/SMB share
    folder.mkdir()
    for part in sorted(shp.parent.iterdir()):
        (folder / part.name).write_bytes(part.read_bytes())
        (folder / f"._{part.name}").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    assert read_layer(folder, "grid").frame.code.tolist() == frame.code.tolist()


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".shp"])
def test_file_without_features_says_so(
    tmp_path: Path, sample_city: SampleCity, suffix: str
) -> None:
    path = tmp_path / f"grid{suffix}"
    if suffix == ".geojson":
        path.write_text('{"type": "FeatureCollection", "features": []}')
    else:
        pyogrio.write_dataframe(_grids(sample_city).iloc[:0], path)
    with pytest.raises(InvalidInputError, match=rf"grid{suffix}: holds no features"):
        read_layer(path, "grid")


def _city_gpkg(city: SampleCity, path: Path) -> Path:
    """Every level as its own layer, as a city hands its whole division over."""
    for level in ("city", "district", "street", "community", "grid"):
        frame = city.level(level)[["code", "name", "parent_code", "geometry"]]
        pyogrio.write_dataframe(frame.reset_index(drop=True), path, layer=level)
    buildings = city.buildings.iloc[:5][["code", "address", "geometry"]].reset_index(drop=True)
    pyogrio.write_dataframe(buildings, path, layer="buildings")
    return path


def test_geopackage_layer_named_after_the_level_is_read(
    tmp_path: Path, sample_city: SampleCity
) -> None:
    gpkg = _city_gpkg(sample_city, tmp_path / "city.gpkg")
    grids = read_layer(gpkg, "grid")
    assert grids.source == "city.gpkg (layer grid)"
    assert grids.frame.code.tolist() == sample_city.level("grid").code.tolist()
    assert read_layer(gpkg, "building").frame.code.tolist() == \
        sample_city.buildings.code.iloc[:5].tolist()  # fmt: skip
    street = read_layer(gpkg, "grid", ReadOptions(layer="street"))  # --layer still wins
    assert street.frame.code.tolist() == sample_city.level("street").code.tolist()
    with pytest.raises(InvalidInputError, match=r"city.gpkg: has no layer 'grids' \(--layer\); "
                       r"its layers are city, district, street, community, grid, buildings"):
        read_layer(gpkg, "grid", ReadOptions(layer="grids"))


def test_geopackage_with_several_layers_none_named_is_refused(
    tmp_path: Path, sample_city: SampleCity
) -> None:
    gpkg = tmp_path / "data.gpkg"
    for layer in ("wangge", "jiedao"):
        pyogrio.write_dataframe(_grids(sample_city), gpkg, layer=layer)
    with pytest.raises(InvalidInputError, match=r"data.gpkg: holds 2 layers \(wangge, jiedao\) "
                       r"and none named grid or grids; name the one to import with --layer"):
        read_layer(gpkg, "grid")
    assert read_layer(gpkg, "grid", ReadOptions(layer="wangge")).source == \
        "data.gpkg (layer wangge)"  # fmt: skip


# --- codes stored as numbers ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".shp", ".gpkg"])
def test_whole_number_codes_read_without_decimals(
    tmp_path: Path, sample_city: SampleCity, suffix: str
) -> None:
    frame = _grids(sample_city)
    numeric = frame.assign(code=frame.code.astype("float64"), parent=frame.parent.astype("float64"))
    read = read_layer(_write(numeric, tmp_path / f"grid{suffix}"), "grid")
    assert read.frame.code.tolist() == frame.code.tolist()
    assert read.frame.parent_code.tolist() == frame.parent.tolist()
    facilities = sample_city.facilities.iloc[:3][["code", "name", "geometry"]]
    numeric = facilities.assign(code=facilities.code.astype("float64"))  # 16 digits < 2**53
    read = read_layer(_write(numeric, tmp_path / f"facilities{suffix}"), "facility")
    assert read.frame.code.tolist() == facilities.code.tolist()


@pytest.mark.parametrize("suffix", [".shp", ".gpkg"])
def test_long_codes_stored_as_floating_point_are_refused(
    tmp_path: Path, sample_city: SampleCity, suffix: str
) -> None:
    buildings = sample_city.buildings.iloc[:3][["code", "address", "geometry"]]
    codes = [f"{c}{k:03d}" for k, c in enumerate(_grids(sample_city, 3).code)]  # 18 digits
    numeric = buildings.assign(code=[float(c) for c in codes]).rename(columns={"code": "BM"})
    with pytest.raises(InvalidInputError, match=r"field 'BM' is stored as floating point; codes "
                       r"longer than 15 digits cannot be represented .*store the field as text"):
        read_layer(_write(numeric, tmp_path / f"buildings{suffix}"), "building")


def _write(frame: gpd.GeoDataFrame, path: Path) -> Path:
    pyogrio.write_dataframe(frame.reset_index(drop=True), path)
    return path


@pytest.mark.parametrize("name", ["grid.geojson", "grid.zip", "grid.gpkg"])
def test_zero_byte_file_says_it_is_empty(tmp_path: Path, name: str) -> None:
    """Not GDAL's 'not recognized as being in a supported file format' with a full path."""
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(InvalidInputError, match=rf"^{name}: the file is empty \(0 bytes\)"):
        read_layer(path, "grid")


def test_full_width_codes_get_no_parent_by_prefix(tmp_path: Path, sample_city: SampleCity
                                                  ) -> None:  # fmt: skip
    frame = _grids(sample_city, 2).drop(columns="parent")
    full_width = str.maketrans("0123456789", "０１２３４５６７８９")
    frame.loc[0, "code"] = frame.code[0].translate(full_width)
    read = read_layer(_geojson(frame, tmp_path / "grid.geojson"), "grid")
    assert read.frame.parent_code.tolist() == [None, frame.code[1][:12]]


class _UnflaggedName(zipfile.ZipInfo):
    """A member whose name is written in ``encoding`` without the UTF-8 flag, as the
    Windows Explorer (GBK on Chinese Windows) and Info-ZIP (UTF-8 bytes) write them."""

    encoding = "gbk"

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 (zipfile's name)
        return self.filename.encode(self.encoding), self.flag_bits & ~0x800


def _zip_unflagged(archive: Path, parts: dict[str, bytes], encoding: str) -> Path:
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in parts.items():
            info = _UnflaggedName(name)
            info.encoding = encoding
            z.writestr(info, data)
    return archive


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_zip_of_several_shapefiles_names_them_and_layer_picks_one(
    tmp_path: Path, sample_city: SampleCity, encoding: str
) -> None:
    frame = _grids(sample_city)
    parts = {}
    for stem, rows in (("网格_旧", frame.iloc[:2]), ("网格_新", frame.iloc[2:])):
        shp = _shapefile(rows, tmp_path / stem)
        parts.update({f"{stem}{p.suffix}": p.read_bytes() for p in shp.parent.iterdir()})
    archive = _zip_unflagged(tmp_path / "grids.zip", parts, encoding)
    with pytest.raises(InvalidInputError, match=r"grids.zip: holds several datasets \(网格_新.shp, "
                       r"网格_旧.shp\); name the one to import with --layer"):  # fmt: skip
        read_layer(archive, "grid")
    read = read_layer(archive, "grid", ReadOptions(layer="网格_新"))
    assert read.frame.code.tolist() == frame.code.iloc[2:].tolist()
    with pytest.raises(InvalidInputError, match=r"no dataset named '网格' \(--layer\)"):
        read_layer(archive, "grid", ReadOptions(layer="网格"))
    named = tmp_path / "folder"
    named.mkdir()
    for name, data in parts.items():
        (named / name).write_bytes(data)
    read = read_layer(named, "grid", ReadOptions(layer="网格_旧.shp"))
    assert read.frame.code.tolist() == frame.code.iloc[:2].tolist()


@pytest.mark.parametrize("member", ["../网格.shp", "/tmp/网格.shp", "a\\..\\..\\网格.shp"])
def test_zip_slip_is_refused_in_redecoded_names(tmp_path: Path, member: str) -> None:
    archive = _zip_unflagged(tmp_path / "slip.zip", {member: b"x"}, "gbk")
    with pytest.raises(InvalidInputError, match="zip slip"):
        read_layer(archive, "grid")


@pytest.mark.parametrize(("crs", "datum"), [(2383, "Xian 1980"), (2431, "Beijing 1954"),
                                            (4214, "Beijing 1954"), (4545, None),
                                            (4490, None), (3857, None)])  # fmt: skip
def test_old_chinese_datums_are_read_with_a_warning(
    tmp_path: Path, sample_city: SampleCity, crs: int, datum: str | None
) -> None:
    """PROJ takes Xian 1980 and Beijing 1954 to WGS 84 with no datum shift ('ballpark'):
    tens of metres off. CGCS2000 is treated as WGS 84 (centimetres)."""
    frame = _grids(sample_city).to_crs(crs)
    read = read_layer(_shapefile(frame, tmp_path / "src"), "grid")
    if datum is None:
        assert read.warnings == [] and read.crs_warnings == []
        return
    assert read.crs_warnings == read.warnings and len(read.warnings) == 1
    assert f"EPSG:{crs}" in read.warnings[0] and datum in read.warnings[0]
    assert "100 m" in read.warnings[0] and "7-parameter" in read.warnings[0]
