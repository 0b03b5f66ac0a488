"""The NumPy shapefile reader returns exactly what GDAL returns, record by record.

Plain one-ring polygons are parsed from the file's bytes; everything else (holes and
several parts, null shapes, Z, unclosed or damaged records) goes to GDAL. Each file
here mixes both, so records sit at every byte alignment.
"""

from __future__ import annotations

import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from gridmap.errors import InvalidInputError
from gridmap.ingest import shapefile
from gridmap.ingest.compare import canonical_wkb
from gridmap.ingest.reader import read_layer
from sample_data.city import SampleCity


def _gdal(path: Path) -> np.ndarray:
    return pyogrio.read_dataframe(path, columns=[]).geometry.to_numpy()


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    records = shapefile.index_records(path, shapefile.shx_offsets(path.with_suffix(".shx")))
    assert records is not None
    return shapefile.read_polygons(path, records)


def _ours(path: Path) -> np.ndarray:
    return _read(path)[0]


def _same_as_gdal(path: Path) -> np.ndarray:
    ours, gdal = _ours(path), _gdal(path)
    assert len(ours) == len(gdal)
    for i, (a, b) in enumerate(zip(ours, gdal, strict=True)):
        assert (a is None) == (b is None), i
        assert a is None or shapely.to_wkb(a) == shapely.to_wkb(b), i
    return ours


def _write(geoms: list[shapely.Geometry | None], path: Path) -> Path:
    frame = gpd.GeoDataFrame({"CODE": [str(i) for i in range(len(geoms))]},
                             geometry=gpd.GeoSeries(geoms), crs=4326)  # fmt: skip
    pyogrio.write_dataframe(frame, path, encoding="UTF-8")
    return path


def test_sample_grids_are_gdals(tmp_path: Path, sample_city: SampleCity) -> None:
    frame = sample_city.level("grid")[["code", "geometry"]]
    path = tmp_path / "grid.shp"
    pyogrio.write_dataframe(frame, path, encoding="UTF-8")
    assert all(g is not None for g in _same_as_gdal(path))


def test_every_kind_of_record_is_gdals(tmp_path: Path) -> None:
    square = box(106.5, 29.5, 106.6, 29.6)
    holed = Polygon(square.exterior.coords, [box(106.52, 29.52, 106.54, 29.54).exterior.coords])
    two = MultiPolygon([box(106.0, 29.0, 106.1, 29.1), box(106.2, 29.0, 106.3, 29.1)])
    geoms = [square, holed, None, two, square, holed, holed, two, square, None, square]
    ours = _same_as_gdal(_write(geoms, tmp_path / "mixed.shp"))
    assert [g is None for g in ours] == [g is None for g in geoms]


def test_z_polygons_go_to_gdal(tmp_path: Path) -> None:
    geoms = [shapely.force_3d(box(106.0, 29.0, 106.1, 29.1), 300.0), None,
             shapely.force_3d(box(106.2, 29.0, 106.3, 29.1), 310.0)]  # fmt: skip
    ours = _same_as_gdal(_write(geoms, tmp_path / "z.shp"))
    assert shapely.has_z(ours[0])


def _record_start(path: Path, index: int) -> int:
    """Byte offset of record ``index``'s content in the .shp."""
    shx = path.with_suffix(".shx").read_bytes()
    return struct.unpack_from(">i", shx, 100 + 8 * index)[0] * 2 + 8


def test_unclosed_ring_is_refused_naming_the_feature(tmp_path: Path) -> None:
    path = _write([box(106.0, 29.0, 106.1, 29.1)] * 3, tmp_path / "open.shp")
    data = bytearray(path.read_bytes())
    start = _record_start(path, 1)
    points = struct.unpack_from("<i", data, start + 40)[0]
    last = start + 48 + 16 * (points - 1)
    struct.pack_into("<d", data, last, 106.05)  # the ring no longer ends where it began
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match="open.shp is damaged: feature 1: its ring is not"):
        read_layer(path, "grid")


def test_lying_record_header_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = _write([box(106.0, 29.0, 106.1, 29.1)] * 3, tmp_path / "grid.shp")
    data = bytearray(path.read_bytes())
    struct.pack_into("<i", data, _record_start(path, 1) + 40, 10_000)  # points beyond the record
    path.write_bytes(bytes(data))
    try:
        frame = read_layer(path, "grid").frame
    except InvalidInputError as exc:
        assert "grid.shp" in str(exc)
    else:  # GDAL may read what it can; then it must be what GDAL reads
        assert shapely.to_wkb(frame.geometry[0]) == shapely.to_wkb(_gdal(path)[0])


@pytest.mark.parametrize("encoding", ["GBK", "UTF-8"])
def test_text_is_decoded_from_the_files_bytes(tmp_path: Path, encoding: str) -> None:
    frame = gpd.GeoDataFrame({"CODE": ["500103001001001"], "NAME": ["解放碑第1网格"],
                              "PARENT": ["500103001001"], "地址": ["渝中区民族路"]},
                             geometry=[box(106.5, 29.5, 106.6, 29.6)], crs=4326)  # fmt: skip
    path = tmp_path / "grid.shp"
    pyogrio.write_dataframe(frame, path, encoding=encoding)
    meta, table = shapefile.read_attributes(path)
    raw = table.column("NAME").cast("binary").to_pylist()[0]
    assert raw == "解放碑第1网格".encode(encoding)  # GDAL did not recode it
    read = read_layer(path, "grid")
    assert read.encoding_used == encoding and read.frame.name[0] == "解放碑第1网格"


def test_points_and_mostly_multipart_files_are_gdals(tmp_path: Path) -> None:
    points = [shapely.Point(106.0 + i / 1000, 29.0) for i in range(300)]
    _same_as_gdal(_write(points, tmp_path / "points.shp"))
    two = MultiPolygon([box(106.0, 29.0, 106.1, 29.1), box(106.2, 29.0, 106.3, 29.1)])
    _same_as_gdal(_write([two] * 250 + [box(106.5, 29.5, 106.6, 29.6)] * 50,
                         tmp_path / "multi.shp"))  # fmt: skip


def test_wkb_from_the_files_bytes_is_shapelys(tmp_path: Path) -> None:
    """Each one-ring polygon's WKB, taken from the file's bytes, is shapely's WKB of the
    geometry as read; GDAL's records (holes, several parts, null) get none, and a
    reprojected read keeps none."""
    square = box(106.5, 29.5, 106.6, 29.6)
    holed = Polygon(square.exterior.coords, [box(106.52, 29.52, 106.54, 29.54).exterior.coords])
    path = _write([square, holed, None, square], tmp_path / "d.shp")
    geoms, wkb = _read(path)
    assert wkb[1] is None and wkb[2] is None
    plain = [0, 3]
    assert list(wkb[plain]) == list(canonical_wkb(geoms[plain], oriented=False))
    assert list(wkb[plain]) == [shapely.to_wkb(g, byte_order=1) for g in geoms[plain]]
    frame = gpd.GeoDataFrame({"CODE": ["500103001001001"], "NAME": ["a"],
                              "PARENT": ["500103001001"]}, geometry=[square], crs=4326)
    gk = tmp_path / "gk.shp"
    pyogrio.write_dataframe(frame.to_crs(4545), gk, encoding="UTF-8")
    assert read_layer(gk, "grid").wkb is None
    same = tmp_path / "same.shp"
    pyogrio.write_dataframe(frame, same, encoding="UTF-8")
    read = read_layer(same, "grid")  # rings as the file holds them (clockwise)
    assert read.wkb is not None
    assert list(read.wkb) == list(canonical_wkb(read.frame.geometry.to_numpy(), oriented=False))
