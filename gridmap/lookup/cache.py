"""An on-disk cache of built lookup indexes, shared by the processes of one machine.

Building the index of 65,000 grids takes 10–20 s; every API worker would otherwise
build its own at start-up and after each activation. The first process to need a
generation builds it under an exclusive file lock and writes it; the others wait on
the lock and load the file (a second or two). The key names the database and the
generation's creation time, so a re-created database never gets a stale index.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path

from gridmap.lookup.engine import GridIndex

log = logging.getLogger(__name__)

FORMAT = 1  # bump when GridIndex's pickled state changes


def cache_key(database: str, generation: int, created_at: object) -> str:
    """A file-name-safe key for one generation of one database."""
    raw = f"{FORMAT}|{database}|{generation}|{created_at}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def load_or_build(directory: Path, key: str, build: Callable[[], GridIndex]) -> GridIndex:
    """The cached index for ``key``, building (once across processes) when missing."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"lookup-{key}.pickle"
    with open(directory / f"lookup-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = _read(path)
        if index is None:
            index = build()
            _write(path, index)
        return index


def _read(path: Path) -> GridIndex | None:
    try:
        with path.open("rb") as f:
            index = pickle.load(f)
    except FileNotFoundError:
        return None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
        log.warning("ignoring unreadable lookup cache %s: %s", path, exc)
        return None
    return index if isinstance(index, GridIndex) else None


def _write(path: Path, index: GridIndex) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            pickle.dump(index, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)  # atomic: readers never see half a file
    except OSError as exc:
        log.warning("could not write lookup cache %s: %s", path, exc)
        tmp.unlink(missing_ok=True)
