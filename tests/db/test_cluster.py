"""The embedded PostgreSQL+PostGIS cluster, against real server processes.

Each test gets its own cluster under a temporary directory and destroys it afterwards.
Two layouts are covered: a root the ``postgres`` user can reach (data dir in place), and
a mode-700 root it cannot reach (when run as root: data dir under /var/tmp, linked).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from gridmap.config import Settings
from gridmap.db import cluster as cluster_mod
from gridmap.db.cluster import EmbeddedCluster, check_postgis, find_pg_bindir, resolve_database_url
from gridmap.errors import DatabaseUnavailableError, SetupError

AS_ROOT = os.geteuid() == 0


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A directory every user can traverse (pytest's own tmp dirs are mode 700)."""
    base = Path(tempfile.mkdtemp(prefix="gridmap-test-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def private_base(tmp_path: Path) -> Path:
    """A directory only its owner can traverse."""
    base = tmp_path / "private"
    base.mkdir(mode=0o700)
    base.chmod(0o700)
    return base


@contextmanager
def _made_cluster(root: Path) -> Iterator[EmbeddedCluster]:
    cluster = EmbeddedCluster(root)
    try:
        yield cluster
    finally:
        data_dir = cluster.data_dir
        try:
            cluster.destroy()
        finally:  # never leave a server behind, whatever the test did
            for pid in cluster_mod._postgres_processes_in(data_dir):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(params=["open", "private"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmbeddedCluster]:
    """A not-yet-started cluster, in either layout."""
    if request.param == "open":
        base = request.getfixturevalue("open_base")
    else:
        base = request.getfixturevalue("private_base")
    with _made_cluster(base / ".gridmap") as made:
        yield made


@pytest.fixture
def one_cluster(private_base: Path) -> Iterator[EmbeddedCluster]:
    """A not-yet-started cluster (one layout is enough for recovery tests)."""
    with _made_cluster(private_base / ".gridmap") as made:
        yield made


def _query(url: str, statement: str) -> object:
    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute(statement).fetchone()
    assert row is not None
    return row[0]


def _wait_until_down(cluster: EmbeddedCluster, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while cluster.status().running:
        assert time.monotonic() < deadline, "server still running"
        time.sleep(0.05)


def _kill_server(cluster: EmbeddedCluster) -> int:
    pid = cluster.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _wait_until_down(cluster)
    assert (cluster.data_dir / "postmaster.pid").exists()
    return pid


# ------------------------------------------------------------------- lifecycle


def test_up_serves_postgis(cluster: EmbeddedCluster, request: pytest.FixtureRequest) -> None:
    assert cluster.status().initialized is False

    url = cluster.up()

    status = cluster.status()
    assert status.initialized and status.running and status.pid
    assert url == f"postgresql://gridmap@127.0.0.1:{status.port}/gridmap" == status.url
    assert cluster.url() == url
    assert "POSTGIS=" in str(_query(url, "SELECT postgis_full_version()"))
    assert _query(url, "SELECT count(*) FROM pg_extension WHERE extname = 'btree_gist'") == 1
    assert _query(url, "SHOW server_encoding") == "UTF8"
    # Byte-order collation (cheap btree writes), UTF-8 character classes where there are.
    assert _query(url, "SELECT datcollate FROM pg_database WHERE datname = 'gridmap'") == "C"
    assert _query(url, "SELECT datctype FROM pg_database WHERE datname = 'gridmap'") in (
        "C.UTF-8", "C")
    # The unix socket works too.
    with psycopg.connect(
        host=str(cluster.socket_dir), port=status.port, user="gridmap", dbname="gridmap"
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    link = cluster.root / "pg"
    if AS_ROOT and "private" in request.node.callspec.id:
        assert link.is_symlink()
        assert cluster.home == Path(os.readlink(link))
        assert str(cluster.home).startswith("/var/tmp/gridmap-")
    else:
        assert not link.is_symlink() and cluster.home == link
    if AS_ROOT:
        owner = cluster.data_dir.stat().st_uid
        assert owner != 0 and owner == cluster.home.stat().st_uid
    assert stat.S_IMODE(cluster.data_dir.stat().st_mode) == 0o700


def test_up_is_idempotent(cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    url = cluster.up()
    pid = cluster.status().pid

    assert cluster.up() == url
    assert cluster.status().pid == pid
    monkeypatch.delenv("GRIDMAP_DATABASE_URL", raising=False)
    assert resolve_database_url(Settings(data_dir=cluster.root)) == url


def test_down_then_up_keeps_data_and_port(cluster: EmbeddedCluster) -> None:
    url = cluster.up()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (id int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    cluster.down()

    status = cluster.status()
    assert status.initialized and not status.running
    assert status.pid is None and status.url is None
    with pytest.raises(DatabaseUnavailableError, match="not running"):
        cluster.url()
    cluster.down()  # stopping a stopped cluster is fine

    assert cluster.up() == url  # same (remembered) port
    assert _query(url, "SELECT id FROM kept") == 42


def test_fresh_root_status_and_down_create_nothing(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(tmp_path / ".gridmap")

    status = cluster.status()
    cluster.down()

    assert (status.initialized, status.running, status.pid, status.port, status.url) == (
        False,
        False,
        None,
        None,
        None,
    )
    assert not (tmp_path / ".gridmap").exists()


# ------------------------------------------------------------------- recovery


def test_up_recovers_from_stale_pid_of_killed_server(
    one_cluster: EmbeddedCluster, caplog: pytest.LogCaptureFixture
) -> None:
    url = one_cluster.up()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE survived AS SELECT 7 AS n")
    _kill_server(one_cluster)

    with caplog.at_level(logging.WARNING, logger="gridmap.db.cluster"):
        assert one_cluster.up() == url

    assert "stale" in caplog.text
    assert one_cluster.status().running
    assert _query(url, "SELECT n FROM survived") == 7


def test_up_recovers_when_stale_pid_was_reused(one_cluster: EmbeddedCluster) -> None:
    url = one_cluster.up()
    _kill_server(one_cluster)
    # An unrelated live process (owned by the server user, as the worst case) now has
    # the pid the stale postmaster.pid names.
    squatter = subprocess.Popen(["sleep", "300"], user="postgres" if AS_ROOT else None)
    try:
        pidfile = one_cluster.data_dir / "postmaster.pid"
        lines = pidfile.read_text().splitlines()
        pidfile.write_text("\n".join([str(squatter.pid), *lines[1:]]) + "\n")
        assert not one_cluster.status().running

        assert one_cluster.up() == url
        assert one_cluster.status().pid != squatter.pid
        one_cluster.down()

        assert squatter.poll() is None, "the unrelated process must not be signalled"
    finally:
        squatter.kill()
        squatter.wait()


def test_up_moves_off_a_remembered_port_taken_by_another_process(
    one_cluster: EmbeddedCluster, caplog: pytest.LogCaptureFixture
) -> None:
    one_cluster.up()
    old_port = one_cluster.status().port
    assert old_port is not None
    one_cluster.down()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        with caplog.at_level(logging.WARNING, logger="gridmap.db.cluster"):
            url = one_cluster.up()

        new_port = one_cluster.status().port
        assert new_port is not None and new_port != old_port
        assert url == f"postgresql://gridmap@127.0.0.1:{new_port}/gridmap"
        assert f"port {old_port}" in caplog.text and "taken" in caplog.text
        assert "POSTGIS=" in str(_query(url, "SELECT postgis_full_version()"))

    one_cluster.down()
    assert one_cluster.up() == url  # the new port is remembered


def test_long_root_path_gets_a_short_socket_dir(open_base: Path) -> None:
    root = open_base / ("deep-" + "x" * 60) / ("deeper-" + "y" * 40) / ".gridmap"
    with _made_cluster(root) as cluster:
        url = cluster.up()
        port = cluster.status().port
        assert len(str(cluster.root / "pg" / "run")) > 100
        assert str(cluster.socket_dir).startswith("/tmp/gridmap-")
        with psycopg.connect(
            host=str(cluster.socket_dir), port=port, user="gridmap", dbname="gridmap"
        ) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert "POSTGIS=" in str(_query(url, "SELECT postgis_full_version()"))
    assert not cluster.socket_dir.exists()  # destroy() removed it


# ------------------------------------------------------------------- setup errors


def test_missing_server_binaries_name_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no pg_config
    monkeypatch.setattr(cluster_mod, "_PG_LIB_ROOT", empty)  # no /usr/lib/postgresql/*/bin
    root = tmp_path / ".gridmap"

    with pytest.raises(SetupError) as found:
        find_pg_bindir()
    with pytest.raises(SetupError) as raised:
        EmbeddedCluster(root).up()

    for error in (found.value, raised.value):
        message = str(error)
        assert "\n" not in message
        assert "sudo apt-get install postgresql postgresql-postgis" in message
        assert "GRIDMAP_DATABASE_URL" in message
    assert not root.exists()


def test_find_pg_bindir_prefers_the_highest_versioned_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("9", "13", "16", "17", "extra"):
        (tmp_path / "lib" / name / "bin").mkdir(parents=True)
    for name in ("9", "13", "16", "extra"):
        (tmp_path / "lib" / name / "bin" / "initdb").touch()
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(cluster_mod, "_PG_LIB_ROOT", tmp_path / "lib")

    assert find_pg_bindir() == tmp_path / "lib" / "16" / "bin"


def test_missing_postgis_names_the_install_command(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    pg_config = bindir / "pg_config"
    pg_config.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  --sharedir) echo {tmp_path / 'share'} ;;\n"
        "  --version) echo 'PostgreSQL 15.9 (Debian 15.9-0+deb12u1)' ;;\n"
        "esac\n"
    )
    pg_config.chmod(0o755)
    (tmp_path / "share" / "extension").mkdir(parents=True)

    with pytest.raises(SetupError, match=r"sudo apt-get install postgresql-15-postgis-3"):
        check_postgis(bindir)


def test_installed_postgis_passes_the_check() -> None:
    check_postgis(find_pg_bindir())


def test_configured_url_wins_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRIDMAP_DATABASE_URL", raising=False)
    url = "postgresql://someone@db.example:5433/grid"
    settings = Settings(database_url=url, data_dir=tmp_path / ".gridmap")

    assert resolve_database_url(settings) == url
    assert not (tmp_path / ".gridmap").exists()
