"""The command line gives the same answers as the service (one point, CSV, Parquet)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.config import get_settings
from gridmap.lookup.service import LookupService


@pytest.fixture()
def runner(city_db: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", city_db)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def points(city_db: str) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    service = LookupService(city_db)
    x0, y0, x1, y1 = 106.3, 29.3, 106.9, 29.8
    rng = np.random.default_rng(5)
    xs, ys = rng.uniform(x0, x1, 500), rng.uniform(y0, y1, 500)
    res = service.locate(xs, ys)
    return xs, ys, res.snapshot.index.codes_for(res.index)


def test_single_point(runner: CliRunner, points) -> None:
    xs, ys, want = points
    i = next(k for k, c in enumerate(want) if c)
    result = runner.invoke(app, ["lookup", str(xs[i]), str(ys[i])])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["grid"]["code"] == want[i]
    assert body["ancestors"]["street"]["code"] == want[i][:9]


def test_csv_file(runner: CliRunner, points, tmp_path) -> None:
    xs, ys, want = points
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    with src.open("w") as f:
        f.write("name,lon,lat\n")
        for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
            f.write(f"p{i},{x!r},{y!r}\n")
        f.write("bad,east,29.5\n")
    result = runner.invoke(app, ["lookup", "--in", str(src), "--out", str(dst)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(dst.open()))
    assert [r["grid_code"] or None for r in rows[:-1]] == want
    assert rows[-1]["name"] == "bad" and "line 502" in rows[-1]["error"]
    assert "1 bad" in result.stdout


def test_parquet_file(runner: CliRunner, points, tmp_path) -> None:
    xs, ys, want = points
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pd.DataFrame({"id": range(len(xs)), "longitude": xs, "latitude": ys}).to_parquet(src)
    result = runner.invoke(app, ["lookup", "--in", str(src), "--out", str(dst)])
    assert result.exit_code == 0, result.output
    out = pd.read_parquet(dst)
    assert [None if pd.isna(c) else c for c in out["grid_code"]] == want
    assert list(out["id"]) == list(range(len(xs)))


def test_bad_input_exits_non_zero_with_one_line(runner: CliRunner) -> None:
    result = runner.invoke(app, ["lookup", "106.5", "29.5", "--crs", "EPSG:1234"])
    assert result.exit_code == 2
    assert "1234" in result.stderr and len(result.stderr.strip().splitlines()) == 1
