"""The ``gridmap`` command line."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from gridmap.config import get_settings
from gridmap.errors import GridmapError, SetupError

if TYPE_CHECKING:  # imported where used: the command line starts without them
    import psycopg

    from gridmap.ingest.checks import Report

app = typer.Typer(help="gridmap: grid-management service (网格化管理).", no_args_is_help=True)
db_app = typer.Typer(help="The database: embedded cluster and migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
events_app = typer.Typer(help="Events and work orders: deadlines, sensors.", no_args_is_help=True)
app.add_typer(events_app, name="events")
generations_app = typer.Typer(help="Generations of the division: history and changes.",
                              no_args_is_help=True)  # fmt: skip
app.add_typer(generations_app, name="generations")

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Print core errors on stderr in one line and exit with the error's code; with
    ``--json`` print them as JSON on stdout instead. Anything unexpected is one line too
    (``GRIDMAP_DEBUG=1`` shows the traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            error = _as_gridmap_error(exc)
            if error is None:
                raise
            if kwargs.get("as_json"):
                typer.echo(json.dumps({"error": error.message, "details": error.details},
                                      ensure_ascii=False, default=str))  # fmt: skip
            else:
                typer.echo(f"gridmap: error: {error.message}", err=True)
            raise typer.Exit(error.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _as_gridmap_error(exc: Exception) -> GridmapError | None:
    """``exc`` as an error a user can act on; None to let it through as it is (under
    ``GRIDMAP_DEBUG``, anything not raised on purpose)."""
    import psycopg

    from gridmap.db.refusals import REFUSALS, refused

    if isinstance(exc, GridmapError):
        return exc
    if os.environ.get("GRIDMAP_DEBUG"):
        return None
    if isinstance(exc, REFUSALS):
        return refused(exc, "the write")
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return SetupError(
            f"the database has no gridmap tables ({exc.diag.message_primary}): run "
            "`gridmap db migrate`, or run gridmap from the folder whose .gridmap holds "
            "your city, or set GRIDMAP_DATABASE_URL")  # fmt: skip
    return GridmapError(f"unexpected {type(exc).__name__}: {exc} (GRIDMAP_DEBUG=1 shows "
                        "where)")  # fmt: skip


def _cluster():  # type: ignore[no-untyped-def]
    from gridmap.db.cluster import EmbeddedCluster

    return EmbeddedCluster(get_settings().data_dir)


@db_app.command("up")
@friendly_errors
def db_up() -> None:
    """Start (or reuse) the embedded PostgreSQL+PostGIS cluster and print its URL."""
    if get_settings().database_url:
        typer.echo("GRIDMAP_DATABASE_URL is set: using that server, not the embedded one")
        return
    typer.echo(_cluster().up())


@db_app.command("down")
@friendly_errors
def db_down() -> None:
    """Stop the embedded cluster."""
    _cluster().down()
    typer.echo("stopped")


@db_app.command("status")
@friendly_errors
def db_status() -> None:
    """Say whether the embedded cluster is running, and where."""
    st = _cluster().status()
    state = "running" if st.running else ("stopped" if st.initialized else "not initialized")
    typer.echo(f"{state}  port={st.port}  pid={st.pid}  data={st.data_dir}")
    if not st.running:
        raise typer.Exit(1)


@db_app.command("url")
@friendly_errors
def db_url() -> None:
    """Print the database URL in use (starting the embedded cluster if needed)."""
    from gridmap.db.engine import libpq_url

    typer.echo(libpq_url())


@db_app.command("migrate")
@friendly_errors
def db_migrate(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
    down: Annotated[bool, typer.Option("--down", help="migrate down to REVISION")] = False,
) -> None:
    """Apply Alembic migrations (up to head by default)."""
    from gridmap.db import migrate

    if down:
        migrate.downgrade(revision=revision if revision != "head" else "base")
    else:
        migrate.upgrade(revision=revision)
    typer.echo(f"migrated {'down' if down else 'up'} to {revision}")


@app.command("sample")
@friendly_errors
def sample(
    grids: Annotated[int, typer.Option(help="number of grids (65000 = Chongqing scale)")] = 6500,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same city)")] = 42,
    out: Annotated[Path | None, typer.Option(help="folder for the shapefiles/GeoPackage")] = None,
    replace: Annotated[bool, typer.Option(help="replace an already loaded division")] = False,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="do nothing if a division is already loaded")
    ] = False,
) -> None:
    """Generate the synthetic city, write its files (shapefile, GeoPackage) and load them."""
    import psycopg

    from gridmap.db.engine import libpq_url
    from gridmap.ingest.bulk import load_city
    from sample_data.city import generate_city, read_files, write_files

    url = libpq_url()
    if if_empty and _has_areas(url):
        typer.echo("a division is already loaded; nothing to do")
        return
    out = out or get_settings().data_dir / "sample"
    t0 = time.perf_counter()
    city = generate_city(grids=grids, seed=seed)
    typer.echo(f"generated {grids} grids in {time.perf_counter() - t0:.1f}s", err=True)
    paths = write_files(city, out)
    typer.echo(f"wrote {len(paths)} files to {out}", err=True)
    t1 = time.perf_counter()
    with psycopg.connect(url) as conn:
        summary = load_city(conn, read_files(out), replace=replace)
    typer.echo(f"loaded in {time.perf_counter() - t1:.1f}s: {summary}")


def _has_areas(url: str) -> bool:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT EXISTS (SELECT 1 FROM areas)").fetchone() == (True,)


@app.command("lookup")
@friendly_errors
def lookup(
    lon: Annotated[float | None, typer.Argument(help="longitude (or easting)")] = None,
    lat: Annotated[float | None, typer.Argument(help="latitude (or northing)")] = None,
    crs: Annotated[str, typer.Option(help="4326, 4490, 3857, 4513-4554, gcj02, bd09")] = "4326",
    as_of: Annotated[str | None, typer.Option(help="generation id or ISO timestamp")] = None,
    snap: Annotated[float | None, typer.Option(help="snap outside points (metres)")] = None,
    infile: Annotated[Path | None, typer.Option("--in", help="CSV or Parquet of points")] = None,
    outfile: Annotated[Path | None, typer.Option("--out", help="where to write answers")] = None,
) -> None:
    """Which grid is a point in? One point (LON LAT) or a file (--in/--out, CSV or Parquet)."""
    import orjson

    from gridmap.db.engine import libpq_url
    from gridmap.errors import InvalidInputError
    from gridmap.lookup import files
    from gridmap.lookup.service import LookupService

    service = LookupService(libpq_url())
    if infile is not None:
        if outfile is None:
            raise InvalidInputError("--in needs --out (a .csv or .parquet path)")
        report = files.lookup_file(service, infile, outfile, crs, as_of, snap)
        typer.echo(
            f"{report.rows} rows: {report.located} in a grid, {report.outside} outside, "
            f"{len(report.bad)} bad (generation {report.generation}) -> {outfile}"
        )
        for bad in report.bad[:10]:
            typer.echo(f"  {bad['problem']}", err=True)
        return
    if lon is None or lat is None:
        raise InvalidInputError("give LON LAT, or --in FILE --out FILE")
    typer.echo(orjson.dumps(files.lookup_one(service, lon, lat, crs, as_of, snap)).decode())


@app.command("map")
@friendly_errors
def map_export(
    area: Annotated[str, typer.Option("--area", help="area code (district … grid)")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write")] = Path("map.html"),
) -> None:
    """Write a standalone, offline HTML map (folium) of an area's grids, buildings, facilities."""
    from gridmap.db.engine import make_engine, session_scope
    from gridmap.mapview import write_area_map

    engine = make_engine()
    try:
        with session_scope(engine) as session:
            path = write_area_map(session, area, out)
    finally:
        engine.dispose()
    typer.echo(f"wrote {path}")


@app.command("serve")
@friendly_errors
def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
) -> None:
    """Serve the API and the map page."""
    import uvicorn

    from gridmap.db.engine import libpq_url

    # Resolve once here so that every worker uses the same (possibly embedded) server.
    os.environ["GRIDMAP_DATABASE_URL"] = libpq_url()
    from gridmap.cli_auth import bootstrap_admin_password

    password = bootstrap_admin_password()
    if password is not None:
        typer.echo(f"gridmap: no credentials yet; created user 'admin' with one-time password "
                   f"{password}  (shown once; add others with `gridmap user add`)", err=True)
    uvicorn.run("api.main:create_app", factory=True, host=host, port=port, workers=workers)


@app.command("import")
@friendly_errors
def import_(
    level: Annotated[str, typer.Argument(help="an area level, building, facility or worker")],
    path: Annotated[Path, typer.Argument(help=".shp, folder, .zip, .gpkg, .geojson, .fgb; "
                                              "workers also .csv")],
    commit: Annotated[bool, typer.Option("--commit", help="publish (default: dry run)")] = False,
    code_field: Annotated[str | None, typer.Option(help="field with the code")] = None,
    name_field: Annotated[str | None, typer.Option(help="field with the name")] = None,
    parent_field: Annotated[str | None, typer.Option(help="field with the parent code")] = None,
    encoding: Annotated[str | None, typer.Option(help="text encoding (default: .cpg)")] = None,
    source_crs: Annotated[str | None, typer.Option(help="the CRS (overrides .prj)")] = None,
    layer: Annotated[str | None, typer.Option(help="GeoPackage layer, or a dataset in a "
                                                   ".zip or folder")] = None,
    fix: Annotated[bool, typer.Option("--fix", help="repair invalid geometry")] = False,
    sliver_m2: Annotated[float, typer.Option(help="sliver warning under this area")] = 1.0,
    overlap_m2: Annotated[float, typer.Option(help="overlaps above this are errors (smaller "
                                                   "ones: a note per parent)")] = 1.0,
    gap_m2: Annotated[float, typer.Option(help="gaps above this are errors (smaller ones: a "
                                               "note per parent)")] = 1.0,
    outside_fraction: Annotated[float, typer.Option(help="max share outside parent")] = 0.001,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
) -> None:
    """Read, check and diff a boundary file; with --commit publish it as a new generation.

    Exit codes: 0 fine; 2 the file or its features have errors (nothing written);
    3 nothing published yet; 4 another import was published meanwhile;
    5 the database is not set up; 1 anything else.
    """

    import psycopg

    from gridmap.db.engine import libpq_url
    from gridmap.ingest.checks import Thresholds
    from gridmap.ingest.publish import check_and_publish, prepare_import
    from gridmap.ingest.reader import ReadOptions

    options = ReadOptions(code_field, name_field, parent_field, encoding, source_crs, layer,
                          get_settings().import_max_bytes)
    thresholds = Thresholds(sliver_m2, overlap_m2, gap_m2, outside_fraction, fix)
    recorded: int | None = None
    with _progress(quiet=as_json) as step, psycopg.connect(libpq_url()) as conn:
        if commit:  # read and check once, publishing only if the report holds no errors
            report = check_and_publish(conn, path, level, options=options,
                                       thresholds=thresholds, progress=step)  # fmt: skip
            if report.committed:
                recorded = _record(conn, level, path, report)
        else:
            report = prepare_import(conn, path, level, options, thresholds, step).report
            conn.rollback()
    if as_json:
        out = report.to_dict() | ({"import_id": recorded} if report.committed else {})
        typer.echo(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        typer.echo(report.to_text() + (f"\nrecorded as import {recorded}" if recorded
                                       else "" if report.committed
                                       else _not_published(report.errors)))  # fmt: skip
    if report.errors:
        if commit:
            typer.echo("gridmap: error: errors in the report; nothing was committed", err=True)
        raise typer.Exit(2)


def _record(conn: psycopg.Connection, level: str, path: Path, report: Report) -> int | None:
    """Record a publish as an import (listed over the API); a failure to record is a
    warning, as the publish itself is done."""
    import psycopg

    from gridmap.ingest.jobs import record_command_line_commit

    try:
        return record_command_line_commit(conn, level, path, report)
    except psycopg.Error as exc:
        conn.rollback()
        typer.echo(f"gridmap: warning: published, but not recorded as an import: {exc}",
                   err=True)  # fmt: skip
        return None


def _not_published(errors: int) -> str:
    """The text report's last line when nothing was published (a dry run, or a
    ``--commit`` the errors refused), so that a report saved to a file says so."""
    if errors:
        return f"\nnothing published: {errors:,} error(s) must be fixed first"
    return "\ndry run: nothing published (--commit publishes it)"


@app.command("export")
@friendly_errors
def export_(
    level: Annotated[str, typer.Argument(help="district … grid, building, facility")],
    path: Annotated[Path, typer.Argument(help="output: .geojson, .zip (shapefile), .gpkg")],
    encoding: Annotated[str, typer.Option(help="shapefile text: UTF-8 or GBK")] = "UTF-8",
    bbox: Annotated[str | None, typer.Option(help="minx,miny,maxx,maxy")] = None,
    generation: Annotated[int | None, typer.Option(help="default: active")] = None,
) -> None:
    """Export a layer (no personal data) as GeoJSON, zipped shapefile or GeoPackage."""
    import psycopg

    from gridmap.db.engine import libpq_url
    from gridmap.ingest.export import export_layer, parse_bbox

    with psycopg.connect(libpq_url()) as conn:
        out, rows = export_layer(conn, level, path, bbox=parse_bbox(bbox), generation=generation,
                                 encoding=encoding)  # fmt: skip
    typer.echo(f"wrote {rows:,} {level} features to {out}")


@generations_app.command("list")
@friendly_errors
def generations_list(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Every generation, oldest first: when it was in force and what it was."""
    from dataclasses import asdict

    from gridmap.db.engine import make_engine, session_scope
    from gridmap.generations import list_generations

    engine = make_engine()
    try:
        with session_scope(engine) as session:
            found = list_generations(session)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([asdict(g) for g in found], ensure_ascii=False, default=_iso))
        return
    for g in found:
        until = "active" if g.active else f"until {_when(g.superseded_at)}"
        typer.echo(f"{g.id:>6}  {_when(g.activated_at)} … {until}  {g.description}")


@generations_app.command("show")
@friendly_errors
def generations_show(
    generation: Annotated[int, typer.Argument(help="generation id")],
    limit: Annotated[int, typer.Option(help="codes listed per change")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """What a generation changed against the one before it: areas added, removed, changed.

    Exit codes: 0 fine; 3 no such generation; 1 anything else.
    """
    from dataclasses import asdict

    from gridmap.db.engine import make_engine, session_scope
    from gridmap.generations import generation_changes

    engine = make_engine()
    try:
        with session_scope(engine) as session:
            changes = generation_changes(session, generation, limit=limit)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(asdict(changes), ensure_ascii=False, default=_iso))
        return
    g = changes.generation
    typer.echo(f"generation {g.id}: {g.description}")
    typer.echo(f"  in force {_when(g.activated_at)} … "
               f"{'now (active)' if g.active else _when(g.superseded_at)}; "
               f"previous: {g.previous or 'none'}")  # fmt: skip
    for lv in changes.levels:
        typer.echo(f"  {lv.level}: {lv.added:,} added, {lv.removed:,} removed, "
                   f"{lv.changed:,} changed, {lv.unchanged:,} unchanged")  # fmt: skip
        for kind, codes, total in (("added", lv.added_codes, lv.added),
                                   ("removed", lv.removed_codes, lv.removed),
                                   ("changed", lv.changed_codes, lv.changed)):  # fmt: skip
            if codes:
                more = f" … {total - len(codes):,} more" if total > len(codes) else ""
                typer.echo(f"    {kind}: {' '.join(codes)}{more}")


def _when(moment: Any) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "never"


def _iso(value: Any) -> str:
    """JSON for datetimes: ISO 8601, as the API writes them."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _progress(quiet: bool):  # type: ignore[no-untyped-def]
    """A context manager yielding a progress callback (a rich progress bar on stderr)."""
    from contextlib import contextmanager

    from rich.console import Console
    from rich.progress import Progress

    @contextmanager
    def bar():  # type: ignore[no-untyped-def]
        if quiet or not sys.stderr.isatty():
            yield lambda _f, _m: None
            return
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("import", total=1.0)
            yield lambda f, m: progress.update(task, completed=f, description=m)

    return bar()


@events_app.command("escalate")
@friendly_errors
def events_escalate(
    at: Annotated[
        str | None, typer.Option(help="pretend it is this ISO 8601 time (default: now)")
    ] = None,
) -> None:
    """Escalate overdue events one level and open events for silent sensors (one round)."""
    from datetime import datetime

    from gridmap.db.engine import default_engine
    from gridmap.events.clock import FixedClock, SystemClock
    from gridmap.events.scheduler import run_deadlines

    clock = FixedClock(datetime.fromisoformat(at)) if at else SystemClock()
    done = run_deadlines(default_engine(), clock)
    typer.echo(f"escalated {done['escalated']} events; opened {done['sensor_events']} "
               f"sensor events; moved {done['reassigned']} events stored under the previous "
               "generation")


@events_app.command("listen")
@friendly_errors
def events_listen(
    host: Annotated[str, typer.Option(help="MQTT broker host")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="MQTT broker port")] = 1883,
) -> None:
    """Handle sensor readings from MQTT (gridmap/sensors/{device_id}/{kind}) until Ctrl-C."""
    from gridmap.db.engine import default_engine
    from gridmap.events.clock import SystemClock
    from gridmap.events.sensors import MqttListener

    listener = MqttListener(default_engine(), SystemClock(), host, port)
    listener.start()
    typer.echo(f"listening on mqtt://{host}:{port}/gridmap/sensors/+/+", err=True)
    try:
        while True:
            time.sleep(1)
    finally:
        listener.stop()


def _register_auth() -> None:
    from gridmap.cli_auth import key_app, user_app

    app.add_typer(user_app, name="user")
    app.add_typer(key_app, name="key")


_register_auth()


def main() -> None:
    """Entry point used by ``python -m gridmap``."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
