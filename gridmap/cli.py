"""The ``gridmap`` command line."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gridmap.config import get_settings
from gridmap.errors import GridmapError

app = typer.Typer(help="gridmap: grid-management service (网格化管理).", no_args_is_help=True)
db_app = typer.Typer(help="The database: embedded cluster and migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
events_app = typer.Typer(help="Events and work orders: deadlines, sensors.", no_args_is_help=True)
app.add_typer(events_app, name="events")

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Print core errors on stderr in one line and exit with the error's code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GridmapError as exc:
            typer.echo(f"gridmap: error: {exc.message}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


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


@app.command("serve")
@friendly_errors
def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
) -> None:
    """Serve the API and the map page."""
    # Resolve once here so that every worker uses the same (possibly embedded) server.

    import uvicorn

    from gridmap.db.engine import libpq_url

    os.environ["GRIDMAP_DATABASE_URL"] = libpq_url()
    uvicorn.run("api.main:create_app", factory=True, host=host, port=port, workers=workers)


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
               "sensor events")


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


def main() -> None:
    """Entry point used by ``python -m gridmap``."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
