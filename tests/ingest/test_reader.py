"""The reader refuses what it cannot read with one clear error naming the file and the
problem (never a traceback), and reads what it can the way a GIS would: files written
here, each crafted to carry one problem found by the import audit."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest

from gridmap.errors import InvalidInputError
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
