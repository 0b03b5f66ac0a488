"""The embedded PostgreSQL+PostGIS cluster gridmap runs when no database URL is set.

Layout under the settings' ``data_dir`` (``root``, normally ``.gridmap``)::

    root/pg.lock          serialises up()/down()/destroy() between processes
    root/pg/              the cluster's home (or a symlink to /var/tmp/gridmap-<hash>, below)
        data/             the data directory (initdb)
        server.log        the server's log
        port              the TCP port last used, reused while it stays free
        run/              unix socket directory (or /tmp/gridmap-<hash> if that path is too long)

PostgreSQL refuses to run as root. When gridmap runs as root, initdb and pg_ctl run as
the unprivileged ``postgres`` system user (via ``runuser``), which owns the cluster's
home. That user must be able to reach the home; when it cannot (say the project lives
under a mode-700 ``/root``) the home goes to ``/var/tmp/gridmap-<hash of root>/`` and
``root/pg`` becomes a symlink to it.

Clients always connect over TCP on 127.0.0.1 as the ``gridmap`` superuser with trust
authentication: the URL is ``postgresql://gridmap@127.0.0.1:<port>/gridmap``.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import pwd
import random
import re
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import psycopg
from psycopg import sql

from gridmap.config import Settings, get_settings
from gridmap.errors import DatabaseUnavailableError, SetupError

__all__ = [
    "ClusterStatus",
    "EmbeddedCluster",
    "check_postgis",
    "find_pg_bindir",
    "resolve_database_url",
]

log = logging.getLogger(__name__)

SUPERUSER = "gridmap"
DATABASE = "gridmap"
HOST = "127.0.0.1"
MIN_MAJOR = 15
EXTENSIONS = ("postgis", "btree_gist")

# Where Debian/Ubuntu install versioned server binaries (tests point this elsewhere).
_PG_LIB_ROOT = Path("/usr/lib/postgresql")
_FALLBACK_PARENT = Path("/var/tmp")
_SHORT_SOCKET_PARENT = Path("/tmp")
# sun_path holds 108 bytes including the NUL; the socket file is "<dir>/.s.PGSQL.<port>".
_MAX_SOCKET_PATH = 107
_SOCKET_SUFFIX_LEN = len("/.s.PGSQL.65535")
# pg_ctl hands paths to /bin/sh inside double quotes: keep them to unremarkable characters.
_SAFE_PATH = re.compile(r"^[A-Za-z0-9/._+:@=-]+$")
_BIND_FAILURE = re.compile(r"could not bind|Address already in use|could not create any TCP/IP")
_LOG_ROTATE_BYTES = 10 * 1024 * 1024
_LOG_TAIL_LINES = 20
_ORPHAN_WAIT_S = 30.0

_INSTALL_SERVER_HINT = (
    "PostgreSQL server binaries not found: run "
    "`sudo apt-get install postgresql postgresql-postgis` (or set GRIDMAP_DATABASE_URL)"
)


# --------------------------------------------------------------------------- binaries


def find_pg_bindir() -> Path:
    """Return the directory holding the PostgreSQL server binaries (``initdb``, ``pg_ctl``).

    Uses ``pg_config --bindir`` when that directory has ``initdb``; otherwise the highest
    ``/usr/lib/postgresql/<major>/bin`` that has one. Raises :class:`SetupError` when
    neither exists.
    """
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = _capture([pg_config, "--bindir"])
        if out:
            bindir = Path(out.strip())
            if _is_file(bindir / "initdb"):
                return bindir
    candidates: list[tuple[int, Path]] = []
    try:
        entries = list(_PG_LIB_ROOT.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        if entry.name.isdigit() and _is_file(entry / "bin" / "initdb"):
            candidates.append((int(entry.name), entry / "bin"))
    if candidates:
        return max(candidates)[1]
    raise SetupError(_INSTALL_SERVER_HINT)


def check_postgis(bindir: Path) -> None:
    """Raise :class:`SetupError` unless PostGIS (and btree_gist) can be created with ``bindir``.

    PostGIS counts as installed iff ``<sharedir>/extension/postgis.control`` exists, where
    ``sharedir`` comes from ``<bindir>/pg_config --sharedir`` or is
    ``/usr/share/postgresql/<major>``.
    """
    major = _major_version(bindir)
    sharedir = None
    if _is_file(bindir / "pg_config"):
        out = _capture([str(bindir / "pg_config"), "--sharedir"])
        if out and out.strip():
            sharedir = Path(out.strip())
    if sharedir is None:
        sharedir = Path("/usr/share/postgresql") / str(major)
    extdir = sharedir / "extension"
    if not (extdir / "postgis.control").is_file():
        raise SetupError(
            f"PostGIS for PostgreSQL {major} not found (no {extdir / 'postgis.control'}): "
            f"run `sudo apt-get install postgresql-{major}-postgis-3` "
            "(or set GRIDMAP_DATABASE_URL)"
        )
    if not (extdir / "btree_gist.control").is_file():
        raise SetupError(
            f"PostgreSQL {major} contrib extension btree_gist not found in {extdir}: "
            f"run `sudo apt-get install postgresql-contrib` (or set GRIDMAP_DATABASE_URL)"
        )


@lru_cache(maxsize=16)
def _major_version(bindir: Path) -> int:
    """Major version of the PostgreSQL in ``bindir`` (``pg_config``, ``postgres -V``, dir name)."""
    for argv in ([str(bindir / "pg_config"), "--version"], [str(bindir / "postgres"), "-V"]):
        if _is_file(Path(argv[0])):
            match = re.search(r"PostgreSQL\)?\s+(\d+)", _capture(argv) or "")
            if match:
                return int(match.group(1))
    if bindir.parent.name.isdigit():
        return int(bindir.parent.name)
    raise SetupError(f"cannot tell which PostgreSQL version is in {bindir}")


def _capture(argv: list[str]) -> str | None:
    """stdout of a short command, or None if it cannot run or fails."""
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class _PidFile:
    pid: int
    port: int | None


def _read_pidfile(data_dir: Path) -> _PidFile | None:
    """Parse ``postmaster.pid`` (pid, data dir, start time, port, socket dir, …)."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or not lines[0].strip().lstrip("-").isdigit():
        return None
    pid = abs(int(lines[0].strip()))  # negative in single-user mode
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    return _PidFile(pid=pid, port=port)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_postgres_of(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a live PostgreSQL process working in ``data_dir``.

    A postmaster and all its children keep the data directory as working directory, so
    this tells our server apart from an unrelated process that reused a stale pid.
    Without /proc (not Linux) a live pid is assumed to be ours.
    """
    if not Path("/proc/self").exists():
        return _pid_alive(pid)
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:  # gone, zombie, or another user's process (so not our server)
        return False
    exe = exe.removesuffix(" (deleted)")
    return cwd == os.path.realpath(data_dir) and Path(exe).name in ("postgres", "postmaster")


def _postgres_processes_in(data_dir: Path) -> list[int]:
    """Pids of PostgreSQL processes working in ``data_dir`` (e.g. children of a killed server)."""
    if not Path("/proc/self").exists():
        return []
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            if _is_postgres_of(int(entry.name), data_dir):
                found.append(int(entry.name))
    return found


def _port_is_free(port: int) -> bool:
    """Whether PostgreSQL could listen on 127.0.0.1:``port`` (it sets SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _pick_free_port(exclude: set[int]) -> int:
    """A free port, preferably below the usual ephemeral range so clients don't collide."""
    for _ in range(64):
        port = random.randint(20000, 32767)
        if port not in exclude and _port_is_free(port):
            return port
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            port = int(probe.getsockname()[1])
        if port not in exclude:
            return port


def _child_env() -> dict[str, str]:
    """Our environment without libpq/PG variables that could redirect initdb or pg_ctl."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


@lru_cache(maxsize=1)
def _locale_args() -> tuple[str, ...]:
    """UTF-8 character classes, and byte-order collation.

    PostgreSQL compares text with memcmp only under the "C" collation; under
    "C.UTF-8" every comparison goes through strcoll. glibc's C.UTF-8 sorts by code
    point, which for UTF-8 is byte order, so the order is the same, and the codes'
    btree indexes are cheaper to write: an insert of 65,000 grids took 1.69 s in a
    "C" database against 2.05 s in a "C.UTF-8" one (benchmarks/RESULTS.md).
    """
    out = _capture(["locale", "-a"]) or ""
    names = {line.strip().lower().replace("-", "") for line in out.splitlines()}
    return ("--locale=C.UTF-8", "--lc-collate=C") if "c.utf8" in names else ("--no-locale",)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"  {line}" for line in kept) if kept else "  (empty)"


# --------------------------------------------------------------------------- the cluster


@dataclass(frozen=True)
class ClusterStatus:
    """A snapshot of the embedded cluster; ``url`` is set only while it runs."""

    initialized: bool
    running: bool
    pid: int | None
    port: int | None
    data_dir: Path
    url: str | None


class EmbeddedCluster:
    """A private PostgreSQL+PostGIS cluster under ``root`` (the settings' ``data_dir``).

    ``up()`` creates, starts and prepares it; ``down()`` stops it; ``status()`` and
    ``url()`` inspect it. All are safe to call from several processes at once.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        server_user: str = "postgres",
        start_timeout: float = 120.0,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.server_user = server_user
        self.start_timeout = start_timeout
        self._as_server_user = os.geteuid() == 0

    # ----------------------------------------------------------------- paths

    @property
    def home(self) -> Path:
        """The cluster's home: ``root/pg`` or the /var/tmp directory it links to."""
        return self._locate_home(create=False)

    @property
    def data_dir(self) -> Path:
        """The PostgreSQL data directory."""
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        """The server log."""
        return self.home / "server.log"

    @property
    def socket_dir(self) -> Path:
        """The unix socket directory (short enough for the ~107-byte socket path limit)."""
        natural = self.home / "run"
        text = str(natural)
        if len(text) + _SOCKET_SUFFIX_LEN <= _MAX_SOCKET_PATH and _SAFE_PATH.match(text):
            return natural
        return _SHORT_SOCKET_PARENT / f"gridmap-{_short_hash(str(self.data_dir))}"

    @property
    def _port_file(self) -> Path:
        return self.home / "port"

    def _fallback_home(self) -> Path:
        return _FALLBACK_PARENT / f"gridmap-{_short_hash(str(self.root))}"

    def _locate_home(self, *, create: bool) -> Path:
        link = self.root / "pg"
        if link.is_symlink():
            target = Path(os.readlink(link))
            if target != self._fallback_home():  # never chown/delete where we did not put it
                raise SetupError(
                    f"{link} points to {target}, expected {self._fallback_home()}: "
                    "remove the link and retry"
                )
            if create:
                self._make_private_dir(target)  # /var/tmp may have been cleaned
            return target
        if link.exists() or not create:
            return link
        if self._needs_fallback():
            target = self._fallback_home()
            self._make_private_dir(target)
            link.symlink_to(target, target_is_directory=True)
            log.info("embedded PostgreSQL lives in %s (linked from %s)", target, link)
            return target
        self._make_private_dir(link)
        return link

    def _needs_fallback(self) -> bool:
        if not _SAFE_PATH.match(str(self.root / "pg" / "data")):
            return True
        return self._as_server_user and not self._server_user_can_reach(self.root)

    def _server_user_can_reach(self, path: Path) -> bool:
        result = subprocess.run(
            [self._runuser(), "-u", self.server_user, "--", "test", "-x", str(path)],
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=30,
            cwd="/",
        )
        return result.returncode == 0

    def _make_private_dir(self, path: Path) -> None:
        """Create ``path`` (mode 700, owned by the server user) or check it is ours."""
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
        owners = {os.geteuid()}
        if self._as_server_user:
            owners.add(self._server_ids()[0])
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in owners:
            raise SetupError(
                f"{path} exists but is not a directory owned by this user or "
                f"{self.server_user!r}: remove it and retry"
            )
        if self._as_server_user:
            uid, gid = self._server_ids()
            os.chown(path, uid, gid)
        path.chmod(0o700)

    # ----------------------------------------------------------------- privileges

    def _server_ids(self) -> tuple[int, int]:
        try:
            entry = pwd.getpwnam(self.server_user)
        except KeyError:
            raise SetupError(
                f"running as root, but PostgreSQL refuses root and there is no "
                f"{self.server_user!r} system user to run it: run "
                "`sudo apt-get install postgresql` (it creates one), or run gridmap as a "
                "normal user, or set GRIDMAP_DATABASE_URL"
            ) from None
        if entry.pw_uid == 0:
            raise SetupError(f"server user {self.server_user!r} must not be root")
        return entry.pw_uid, entry.pw_gid

    def _runuser(self) -> str:
        path = shutil.which("runuser") or next(
            (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.path.exists(p)), None
        )
        if path is None:
            raise SetupError(
                "running as root needs `runuser` (util-linux) to start PostgreSQL as "
                f"{self.server_user!r}: run `sudo apt-get install util-linux`"
            )
        return path

    def _run(self, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool, as the server user when we are root."""
        if self._as_server_user:
            argv = [self._runuser(), "-u", self.server_user, "--", *argv]
        try:
            return subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                env=_child_env(),
            )
        except subprocess.TimeoutExpired as exc:
            raise DatabaseUnavailableError(
                f"`{' '.join(argv)}` did not finish within {timeout:.0f}s; "
                f"last lines of {self.log_file}:\n{self._log_tail()}"
            ) from exc

    # ----------------------------------------------------------------- state

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "pg.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def _running_pid(self) -> int | None:
        info = _read_pidfile(self.data_dir)
        if info is not None and _is_postgres_of(info.pid, self.data_dir):
            return info.pid
        return None

    def _remembered_port(self) -> int | None:
        try:
            text = self._port_file.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() and 0 < int(text) < 65536 else None

    def _remember_port(self, port: int) -> None:
        if self._remembered_port() == port:
            return
        tmp = self._port_file.with_name(f".port.{os.getpid()}")
        tmp.write_text(f"{port}\n")
        os.replace(tmp, self._port_file)

    def _log_tail(self) -> str:
        try:
            with open(self.log_file, "rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - 64 * 1024))
                return _tail(handle.read().decode(errors="replace"))
        except OSError:
            return "  (no server log)"

    @staticmethod
    def _url(port: int) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{port}/{DATABASE}"

    # ----------------------------------------------------------------- public API

    def status(self) -> ClusterStatus:
        """Inspect the cluster without changing anything."""
        pid = self._running_pid()
        info = _read_pidfile(self.data_dir) if pid else None
        port = info.port if info and info.port else self._remembered_port()
        return ClusterStatus(
            initialized=self._initialized(),
            running=pid is not None,
            pid=pid,
            port=port,
            data_dir=self.data_dir,
            url=self._url(port) if pid is not None and port else None,
        )

    def url(self) -> str:
        """The libpq URL of the running cluster; DatabaseUnavailableError if it is down."""
        current = self.status()
        if current.url is None:
            raise DatabaseUnavailableError(
                f"the embedded PostgreSQL in {self.data_dir} is not running "
                "(start it with EmbeddedCluster.up())"
            )
        return current.url

    def up(self) -> str:
        """Create (first time), start (if stopped) and prepare the cluster; return its URL.

        Idempotent: a running cluster is left as is. Recovers from a stale
        ``postmaster.pid``. Ensures database ``gridmap`` with extensions postgis and
        btree_gist exists.
        """
        found = find_pg_bindir()
        if self._as_server_user:
            self._server_ids()
            self._runuser()
        with self._locked():
            self._locate_home(create=True)
            self._make_private_dir(self.home)
            if self._as_server_user and not self._server_user_can_reach(self.home):
                raise SetupError(
                    f"PostgreSQL runs as {self.server_user!r}, which cannot reach {self.home}: "
                    "make its parent directories searchable (chmod o+x) or move the project"
                )
            bindir = self._select_bindir(found)
            check_postgis(bindir)
            if not self._initialized():
                self._initdb(bindir)
            self._make_private_dir(self.socket_dir)
            if self._running_pid() is None:
                self._clear_stale_state()
                port = self._start(bindir)
            else:
                port = self._running_port()
            self._remember_port(port)
            self._ensure_database(port)
        return self._url(port)

    def down(self) -> None:
        """Stop the cluster (``pg_ctl stop -m fast``); do nothing if it is not running."""
        if not self._initialized() or self._running_pid() is None:
            return
        with self._locked():
            if self._running_pid() is None:
                return
            bindir = self._select_bindir(find_pg_bindir())
            result = self._run(
                [
                    str(bindir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "60",
                    "-s",
                ],
                timeout=90,
            )
            if result.returncode != 0 and self._running_pid() is not None:
                raise DatabaseUnavailableError(
                    f"could not stop the embedded PostgreSQL in {self.data_dir}:\n"
                    f"{_tail(result.stdout + result.stderr, 5)}\n"
                    f"last lines of {self.log_file}:\n{self._log_tail()}"
                )

    def destroy(self) -> None:
        """Stop the cluster and delete it with all its data (irreversible)."""
        self.down()
        link = self.root / "pg"
        if not link.exists() and not link.is_symlink():
            return
        with self._locked():
            home, sockets = self.home, self.socket_dir
            if sockets.parent == _SHORT_SOCKET_PARENT:
                shutil.rmtree(sockets, ignore_errors=True)
            if link.is_symlink():
                if home == self._fallback_home():  # never follow a link we did not make
                    shutil.rmtree(home, ignore_errors=True)
                link.unlink()
            else:
                shutil.rmtree(link, ignore_errors=True)

    # ----------------------------------------------------------------- steps of up()

    def _select_bindir(self, found: Path) -> Path:
        """``found``, or the installed binaries matching an existing data directory."""
        major = _major_version(found)
        try:
            data_major = int((self.data_dir / "PG_VERSION").read_text().strip())
        except (OSError, ValueError):
            data_major = None
        if data_major is None or data_major == major:
            if major < MIN_MAJOR:
                raise SetupError(
                    f"PostgreSQL {major} found in {found}, gridmap needs {MIN_MAJOR} or newer: "
                    f"run `sudo apt-get install postgresql-{MIN_MAJOR} "
                    f"postgresql-{MIN_MAJOR}-postgis-3` (or set GRIDMAP_DATABASE_URL)"
                )
            return found
        matching = _PG_LIB_ROOT / str(data_major) / "bin"
        if _is_file(matching / "initdb"):
            return matching
        raise SetupError(
            f"{self.data_dir} holds a PostgreSQL {data_major} cluster but the binaries "
            f"found are PostgreSQL {major}: run `sudo apt-get install "
            f"postgresql-{data_major}`, or remove {self.home} to start afresh"
        )

    def _initdb(self, bindir: Path) -> None:
        staging = self.home / "data.initdb"  # renamed into place only once complete
        shutil.rmtree(staging, ignore_errors=True)
        argv = [
            str(bindir / "initdb"),
            "-D",
            str(staging),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            *_locale_args(),
            "--no-instructions",
        ]
        result = self._run(argv, timeout=600)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise SetupError(
                f"initdb failed for {self.data_dir} (exit {result.returncode}):\n"
                f"{_tail(result.stdout + result.stderr)}"
            )
        os.rename(staging, self.data_dir)
        log.info("initialised embedded PostgreSQL in %s", self.data_dir)

    def _clear_stale_state(self) -> None:
        """Before a start: drop a stale postmaster.pid and socket locks a dead server left."""
        deadline = time.monotonic() + _ORPHAN_WAIT_S
        while orphans := _postgres_processes_in(self.data_dir):
            if time.monotonic() > deadline:
                raise DatabaseUnavailableError(
                    f"processes of an earlier PostgreSQL server are still running in "
                    f"{self.data_dir} (pids {', '.join(map(str, orphans))}): stop them, retry"
                )
            time.sleep(0.2)
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.exists():
            info = _read_pidfile(self.data_dir)
            log.warning(
                "removing stale %s (pid %s is not this cluster's server)",
                pidfile,
                info.pid if info else "?",
            )
            pidfile.unlink(missing_ok=True)
        for leftover in self.socket_dir.glob(".s.PGSQL.*"):
            leftover.unlink(missing_ok=True)

    def _start(self, bindir: Path) -> int:
        """Start the server on a free port and return the port."""
        tried: set[int] = set()
        remembered = self._remembered_port()
        if remembered is not None and _port_is_free(remembered):
            port = remembered
        else:
            port = _pick_free_port(tried)
            if remembered is not None:
                log.warning(
                    "port %d of the embedded PostgreSQL is taken by another process; "
                    "using port %d instead",
                    remembered,
                    port,
                )
        attempts = 3
        for attempt in range(1, attempts + 1):
            offset = self._rotate_log()
            options = (
                f"-p {port} -c listen_addresses={HOST} -c unix_socket_directories={self.socket_dir}"
            )
            result = self._run(
                [
                    str(bindir / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(int(self.start_timeout)),
                    "-s",
                    "-o",
                    options,
                ],
                timeout=self.start_timeout + 60,
            )
            if result.returncode == 0:
                log.info("embedded PostgreSQL started on %s:%d", HOST, port)
                return port
            if attempt < attempts and _BIND_FAILURE.search(self._log_since(offset)):
                tried.add(port)
                port = _pick_free_port(tried)
                log.warning("port was taken while starting; retrying on port %d", port)
                continue
            raise DatabaseUnavailableError(
                f"could not start the embedded PostgreSQL in {self.data_dir} "
                f"(pg_ctl exit {result.returncode}):\n{_tail(result.stdout + result.stderr, 5)}"
                f"\nlast lines of {self.log_file}:\n{self._log_tail()}"
            )
        raise AssertionError("unreachable")  # the loop returns or raises

    def _running_port(self) -> int:
        """Port of the running server, waiting while it is still writing postmaster.pid."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            info = _read_pidfile(self.data_dir)
            if info is not None and info.port:
                return info.port
            if time.monotonic() > deadline:
                raise DatabaseUnavailableError(
                    f"the PostgreSQL server in {self.data_dir} runs but reports no port; "
                    f"last lines of {self.log_file}:\n{self._log_tail()}"
                )
            time.sleep(0.2)

    def _rotate_log(self) -> int:
        """Keep one old log once the log passes 10 MiB; return the log's current size."""
        try:
            size = self.log_file.stat().st_size
        except FileNotFoundError:
            return 0
        if size > _LOG_ROTATE_BYTES:
            os.replace(self.log_file, self.log_file.with_name("server.log.1"))
            return 0
        return size

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as handle:
                handle.seek(offset)
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def _ensure_database(self, port: int) -> None:
        """Create database ``gridmap`` and its extensions if missing."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                conn = psycopg.connect(
                    host=HOST,
                    port=port,
                    user=SUPERUSER,
                    dbname="postgres",
                    autocommit=True,
                    connect_timeout=10,
                    sslmode="disable",
                )
                break
            except psycopg.OperationalError as exc:  # e.g. still in crash recovery
                if time.monotonic() > deadline:
                    raise DatabaseUnavailableError(
                        f"embedded PostgreSQL on port {port} does not accept connections: "
                        f"{exc}\nlast lines of {self.log_file}:\n{self._log_tail()}"
                    ) from exc
                time.sleep(0.2)
        try:
            with conn:
                found = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                ).fetchone()
                if found is None:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
            with psycopg.connect(
                host=HOST,
                port=port,
                user=SUPERUSER,
                dbname=DATABASE,
                autocommit=True,
                connect_timeout=10,
                sslmode="disable",
            ) as conn:
                for name in EXTENSIONS:
                    conn.execute(
                        sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name))
                    )
        except psycopg.Error as exc:
            raise SetupError(
                f"could not prepare database {DATABASE!r} with {', '.join(EXTENSIONS)} in the "
                f"embedded PostgreSQL: {exc}"
            ) from exc


def resolve_database_url(settings: Settings | None = None) -> str:
    """The database URL to use: ``settings.database_url`` if set, else the embedded cluster's.

    The embedded cluster (under ``settings.data_dir``) is created and started if needed.
    """
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    return EmbeddedCluster(settings.data_dir).up()
