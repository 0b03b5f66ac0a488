"""The garbage-collector pause: nests across threads, restores what it found."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pyogrio
import pytest

from gridmap.ingest import bulk
from gridmap.ingest.gcpause import gc_paused
from gridmap.ingest.publish import import_file
from sample_data.city import SampleCity
from tests.ingest.delivered import grids_as_delivered


def test_pauses_nest_and_the_last_one_resumes() -> None:
    assert gc.isenabled()
    inner_started, outer_done = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other_job() -> None:
        with gc_paused():
            inner_started.set()
            outer_done.wait(5)
            seen.append(gc.isenabled())  # the first job has ended: still paused here
        seen.append(gc.isenabled())

    with gc_paused():
        assert not gc.isenabled()
        worker = threading.Thread(target=other_job)
        worker.start()
        assert inner_started.wait(5)
    outer_done.set()
    worker.join(5)
    assert seen == [False, True]
    assert gc.isenabled()


def test_leaves_a_disabled_collector_disabled_and_survives_errors() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    try:
        with gc_paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()


def test_an_import_pauses_the_collector_for_reading_checking_and_copying_only(
    tmp_path: Path, city_factory: Callable[[], str], sample_city: SampleCity,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading and checking a real file run paused, and so does the COPY of its
    areas; the database work around them (comparing with the published generation,
    activating) does not."""
    frame = grids_as_delivered(sample_city)
    frame.loc[frame.index[0], "MC"] = "改名网格"  # one changed area to write
    path = tmp_path / "grid.shp"
    pyogrio.write_dataframe(frame.reset_index(drop=True), path, encoding="UTF-8")
    states: dict[str, bool] = {}
    copies: list[bool] = []
    copy_frame = bulk._copy_frame

    def watched(*args: Any, **kwargs: Any) -> int:
        copies.append(gc.isenabled())
        return copy_frame(*args, **kwargs)

    monkeypatch.setattr(bulk, "_copy_frame", watched)
    with psycopg.connect(city_factory()) as conn:
        report = import_file(conn, path, "grid", commit=True,
                             progress=lambda _f, m: states.setdefault(m, gc.isenabled()))
    assert report.committed
    paused = {m for m, enabled in states.items() if not enabled}
    assert paused == {"reading grid.shp", f"read {len(frame):,} features", "checking"}
    assert copies == [False]
    assert states["comparing with the active generation"]
    assert states["activating"] and gc.isenabled()
