"""Processes share built indexes through the on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from gridmap.lookup import engine
from gridmap.lookup.service import LookupService


def test_second_service_loads_the_index_instead_of_building(
    city_db: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = LookupService(city_db, cache_dir=tmp_path)
    built = first.active()
    assert list(tmp_path.glob("lookup-*.pickle")), "the built index was not written"

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("built again although a cached index exists")

    monkeypatch.setattr(engine.GridIndex, "build", refuse)
    second = LookupService(city_db, cache_dir=tmp_path).active()
    rng = np.random.default_rng(3)
    xs, ys = rng.uniform(106.2, 107.0, 5000), rng.uniform(29.2, 29.9, 5000)
    assert np.array_equal(built.index.lookup(xs, ys), second.index.lookup(xs, ys))
    assert [second.index.lookup_one(x, y) for x, y in zip(xs[:200], ys[:200], strict=True)] == [
        int(v) for v in built.index.lookup(xs[:200], ys[:200])
    ]


def test_unreadable_cache_file_is_rebuilt(city_db: str, tmp_path) -> None:
    LookupService(city_db, cache_dir=tmp_path).active()
    for path in tmp_path.glob("lookup-*.pickle"):
        path.write_bytes(b"not a pickle")
    snap = LookupService(city_db, cache_dir=tmp_path).active()
    assert len(snap.index) > 0
