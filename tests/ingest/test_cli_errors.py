"""The import and export commands answer bad input in one line (or JSON), never with a
traceback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridmap.cli import app
from gridmap.config import get_settings


@pytest.fixture
def run(database_factory: Callable[..., str], city_db: str, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[Callable[..., object]]:  # fmt: skip
    """Invoke the CLI against the sample city (or, with ``url``, another database)."""

    def invoke(*args: str, url: str = city_db):  # type: ignore[no-untyped-def]
        monkeypatch.setenv("GRIDMAP_DATABASE_URL", url)
        get_settings.cache_clear()
        return CliRunner().invoke(app, list(args))

    yield invoke
    get_settings.cache_clear()


def test_json_errors_go_to_stdout_as_json(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nothing.zip"
    result = run("import", "grid", str(missing), "--json")
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)
    assert "nothing.zip" in error["error"] and "details" in error


def test_export_mistakes_are_one_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for args, said in [(["--bbox", "1,2,3"], "four numbers"), (["--bbox", "a,b,c,d"], "four"),
                       (["--generation", "1", "--encoding", "UTF-8"], None)]:  # fmt: skip
        level = "building" if said is None else "grid"
        result = run("export", level, str(tmp_path / "x.geojson"), *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert (said or "no generations") in result.output
    result = run("export", "grid", str(tmp_path / "no" / "such" / "x.geojson"))
    assert result.exit_code == 2 and "does not exist" in result.output


def test_a_database_without_gridmap_tables_says_what_to_do(  # type: ignore[no-untyped-def]
    run, database_factory: Callable[..., str], tmp_path: Path
) -> None:
    empty = database_factory(migrated=False)
    result = run("export", "grid", str(tmp_path / "x.geojson"), url=empty)
    assert result.exit_code == 5 and "gridmap db migrate" in result.output, result.output
    assert "Traceback" not in result.output


def test_a_row_the_database_refuses_is_one_line_naming_the_rule(  # type: ignore[no-untyped-def]
    run, database_factory: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gridmap.ingest import export

    def refusing(conn, *_args, **_kwargs):  # type: ignore[no-untyped-def]
        conn.execute("INSERT INTO workers (code, name) VALUES ('W1', NULL)")

    monkeypatch.setattr(export, "read_export_frame", refusing)
    result = run("export", "grid", str(tmp_path / "x.geojson"))
    assert result.exit_code == 2 and "the database refused it" in result.output
    assert "column name" in result.output and "Traceback" not in result.output


def test_the_text_report_says_when_nothing_was_published(  # type: ignore[no-untyped-def]
    run, tmp_path: Path
) -> None:
    """A report saved to a file (stdout) says whether anything was published; a worker
    table's report names no CRS."""
    import geopandas as gpd
    from shapely.geometry import box

    grids = tmp_path / "grids.geojson"
    gpd.GeoDataFrame({"code": ["500103001001001", "500103001001001"], "name": ["a", "b"],
                      "parent": ["500103001001", "500103001001"]},
                     geometry=[box(106.50, 29.50, 106.51, 29.51),
                               box(106.51, 29.50, 106.52, 29.51)],
                     crs=4326).to_file(grids)  # fmt: skip
    for args in ([], ["--commit"]):
        result = run("import", "grid", str(grids), *args)
        assert result.exit_code == 2, result.output
        assert result.stdout.rstrip().endswith("error(s) must be fixed first"), result.stdout
    workers = tmp_path / "workers.csv"
    workers.write_text("code,name,phone,role,grids\nW1,张三,13800000000,专职,500103001001001\n",
                       encoding="utf-8")
    result = run("import", "worker", str(workers))
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith("dry run: nothing published (--commit publishes it)")
    assert "no geometry (an attribute table); encoding: UTF-8" in result.stdout
    assert "CRS:" not in result.stdout
