"""The history of the division: every generation, when it was in force, what it changed —
in the core, over the API and from the command line, after real imports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from api.main import create_app
from gridmap.cli import app as cli_app
from gridmap.config import get_settings
from gridmap.db.engine import make_engine, session_scope
from gridmap.errors import NotFoundError
from gridmap.events.intake import Report, create_event
from gridmap.generations import generation_changes, list_generations
from gridmap.ingest.publish import commit_plan, import_file, prepare_import
from gridmap.lookup.service import LookupService
from sample_data.city import SampleCity
from sample_data.redivide import split_in_two
from tests.conftest import make_key
from tests.ingest.delivered import grids_as_delivered


def _redivision(city: SampleCity, tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    """A grid file that merges B into A, renames C and splits D in two (D keeps the west
    half, a new code the east one); returns it and the codes each change names."""
    frame = grids_as_delivered(city)
    same = list(frame.index[frame.SJDM == frame.SJDM.value_counts().idxmax()])
    a, b = next((x, y) for x in same for y in same
                if x < y and shapely.touches(frame.geometry[x], frame.geometry[y]))
    c, d = [x for x in same if x not in (a, b)][:2]
    frame.loc[a, "geometry"] = shapely.union(frame.geometry[a], frame.geometry[b])
    frame.loc[c, "MC"] = "新名字"
    halves = split_in_two(frame.geometry[d])
    assert halves is not None
    parent = frame.SJDM[d]
    new_code = f"{parent}{max(int(x[-3:]) for x in frame.DM[frame.SJDM == parent]) + 1:03d}"
    east = frame.loc[[d]].assign(DM=new_code, MC="新网格", geometry=[halves[1]])
    frame.loc[d, "geometry"] = halves[0]
    codes = {"added": [new_code], "removed": [frame.DM[b]],
             "changed": sorted([frame.DM[a], frame.DM[c], frame.DM[d]])}  # fmt: skip
    path = tmp_path / "grid.gpkg"
    pyogrio.write_dataframe(pd.concat([frame.drop(index=b), east]), path)
    return path, codes


@pytest.fixture
def history(city_factory: Callable[[], str], sample_city: SampleCity, tmp_path: Path
            ) -> tuple[str, dict[str, list[str]], int]:  # fmt: skip
    """A city with a second generation published by a real import, after a failed one
    (whose id is given back: ids have no gaps). Returns (url, codes, generation)."""
    url = city_factory()
    path, codes = _redivision(sample_city, tmp_path)
    with psycopg.connect(url) as conn:
        plan = prepare_import(conn, path, "grid")
        conn.rollback()

        def power_cut(fraction: float, message: str) -> None:
            if message == "activating":
                raise RuntimeError("power cut")

        with pytest.raises(RuntimeError):
            commit_plan(conn, plan, progress=power_cut)
        conn.rollback()
        report = import_file(conn, path, "grid", commit=True)
    assert report.generation_id == 2, "the failed commit's id is taken again"
    return url, codes, report.generation_id


def test_generations_are_listed_with_when_each_was_in_force(history) -> None:  # type: ignore[no-untyped-def]
    url, _codes, gen = history
    engine = make_engine(url)
    with session_scope(engine) as session:
        first, second = list_generations(session)
    engine.dispose()
    assert (first.id, second.id) == (1, gen)
    assert (first.active, second.active) == (False, True)
    assert (first.previous, second.previous) == (None, 1), "the rolled-back id is no generation"
    assert first.superseded_at == second.activated_at is not None
    assert second.superseded_at is None


def test_a_generation_says_what_it_added_removed_and_changed(history) -> None:  # type: ignore[no-untyped-def]
    url, codes, gen = history
    with psycopg.connect(url) as conn:
        grids_before = conn.execute("SELECT count(*) FROM areas WHERE level = 'grid' AND "
                                    "generation_low = 1").fetchone()[0]  # type: ignore[index]  # fmt: skip
    engine = make_engine(url)
    with session_scope(engine) as session:
        changes = generation_changes(session, gen)
        (grid,) = changes.levels
        assert (grid.level, grid.added_codes, grid.removed_codes, grid.changed_codes) == (
            "grid", codes["added"], codes["removed"], codes["changed"])
        assert (grid.added, grid.removed, grid.changed) == (1, 1, 3)
        assert grid.unchanged == grids_before - 4
        first = generation_changes(session, 1, limit=2)
        assert [lv.level for lv in first.levels] == ["city", "district", "street", "community",
                                                     "grid"]  # fmt: skip
        assert first.levels[-1].added == grids_before and len(first.levels[-1].added_codes) == 2
        assert not any(lv.removed or lv.changed or lv.unchanged for lv in first.levels)
        with pytest.raises(NotFoundError, match="generation 99 does not exist"):
            generation_changes(session, 99)
    engine.dispose()


@pytest.fixture
def client(history) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    engine = make_engine(history[0])
    with TestClient(create_app(engine)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {make_key(engine, 'admin')}"
        yield test_client
    engine.dispose()


def test_the_api_lists_generations_and_their_changes(client, history) -> None:  # type: ignore[no-untyped-def]
    url, codes, gen = history
    listed = client.get("/api/v1/generations").json()
    assert [(g["id"], g["active"], g["previous"]) for g in listed] == [(1, False, None),
                                                                      (gen, True, 1)]  # fmt: skip
    assert listed[0]["superseded_at"] == listed[1]["activated_at"]
    body = client.get(f"/api/v1/generations/{gen}").json()
    assert body["generation"]["id"] == gen
    (grid,) = body["levels"]
    assert (grid["added_codes"], grid["removed_codes"], grid["changed_codes"]) == (
        codes["added"], codes["removed"], codes["changed"])
    missing = client.get("/api/v1/generations/99")
    assert missing.status_code == 404 and "99" in missing.json()["message"]
    assert client.get(f"/api/v1/generations/{gen}", params={"limit": -1}).status_code == 422
    # operators see the changes in their area only
    community = codes["changed"][0][:12]
    with psycopg.connect(url) as conn:
        elsewhere = conn.execute("SELECT min(code) FROM areas WHERE level = 'community' AND "
                                 "code <> %s", (community,)).fetchone()[0]  # type: ignore[index]  # fmt: skip
    engine = make_engine(url)
    keys = {area: make_key(engine, "operator", area) for area in (community, elsewhere)}
    engine.dispose()
    client.app.state.principals.invalidate()
    seen = {area: client.get(f"/api/v1/generations/{gen}",
                             headers={"Authorization": f"Bearer {key}"}).json()["levels"]
            for area, key in keys.items()}  # fmt: skip
    assert seen[elsewhere] == []
    assert seen[community][0]["changed_codes"] == codes["changed"]


def test_the_cli_lists_and_shows_generations(history, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:  # fmt: skip
    url, codes, gen = history
    monkeypatch.setenv("GRIDMAP_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(cli_app, ["generations", "list"])
        assert listed.exit_code == 0, listed.output
        assert f"{gen}" in listed.output and "active" in listed.output
        shown = runner.invoke(cli_app, ["generations", "show", str(gen)])
        assert shown.exit_code == 0, shown.output
        assert "grid: 1 added, 1 removed, 3 changed" in shown.output
        assert codes["removed"][0] in shown.output
        as_json = json.loads(runner.invoke(cli_app, ["generations", "show", str(gen),
                                                     "--json"]).stdout)  # fmt: skip
        assert as_json["levels"][0]["changed_codes"] == codes["changed"]
        assert as_json["generation"]["activated_at"].count("T") == 1
        missing = runner.invoke(cli_app, ["generations", "show", "99"])
        assert missing.exit_code == 3 and "generation 99 does not exist" in missing.output
    finally:
        get_settings.cache_clear()


def test_an_area_missing_from_a_generation_says_where_it_is(client, history) -> None:  # type: ignore[no-untyped-def]
    url, codes, gen = history
    removed, added = codes["removed"][0], codes["added"][0]
    gone = client.get(f"/api/v1/areas/{removed}")
    assert gone.status_code == 404
    assert gone.json()["message"] == (f"area {removed} not found in generation {gen}; "
                                      "it is valid in generation 1")  # fmt: skip
    assert gone.json()["details"] == [{"field": "generation", "generation_low": 1,
                                       "generation_high": 1}]  # fmt: skip
    assert client.get(f"/api/v1/areas/{removed}", params={"generation": 1}).status_code == 200
    later = client.get(f"/api/v1/areas/{added}/geometry", params={"generation": 1}).json()
    assert later["message"].endswith(f"it is valid in generation {gen} on")
    assert client.get("/api/v1/areas/500199999999999").json()["message"] == (
        f"area 500199999999999 not found in generation {gen}")
    # outside the caller's area, a removed area reads exactly like one that never was
    engine = make_engine(url)
    elsewhere = make_key(engine, "operator", "500199")
    engine.dispose()
    client.app.state.principals.invalidate()
    hidden = client.get(f"/api/v1/areas/{removed}",
                        headers={"Authorization": f"Bearer {elsewhere}"})  # fmt: skip
    assert hidden.json()["message"] == f"area {removed} not found in generation {gen}"
    assert hidden.json()["details"] == []


def test_a_grid_profile_in_an_earlier_generation_counts_what_lies_in_that_grid(
        client, history, sample_city: SampleCity) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """B was merged into A: today every building of B is assigned to A, yet B's profile
    in generation 1, and A's, count what lies in each as it was then."""
    url, codes, gen = history
    removed = codes["removed"][0]
    buildings, facilities = sample_city.buildings, sample_city.facilities
    with psycopg.connect(url) as conn:
        (absorber,) = conn.execute("SELECT DISTINCT grid_code FROM buildings WHERE code = ANY(%s)",
                                   (buildings.code[buildings.grid_code == removed].tolist(),)
                                   ).fetchall()[0]  # fmt: skip

    def counts(code: str) -> tuple[int, int]:
        return (int((buildings.grid_code == code).sum()),
                int((facilities.grid_code == code).sum()))  # fmt: skip

    def profile(code: str, **params: int) -> tuple[str, tuple[int, int]]:
        body = client.get(f"/api/v1/grids/{code}/profile", params=params).json()
        return body["counted"], (body["buildings"], sum(body["facilities_by_class"].values()))

    assert counts(removed)[0] > 0 and absorber in codes["changed"]
    assert profile(removed, generation=1) == ("located", counts(removed))
    assert profile(absorber, generation=1) == ("located", counts(absorber))
    together = tuple(map(sum, zip(counts(absorber), counts(removed), strict=True)))
    assert profile(absorber) == ("assigned", together)
    assert profile(absorber, generation=gen) == ("assigned", together)
    assert client.get(f"/api/v1/grids/{removed}/profile").status_code == 404


def _point_in(url: str, code: str) -> tuple[float, float]:
    """A point inside the area ``code`` (lon, lat)."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p "
                            "FROM areas WHERE code = %s) g", (code,)).fetchone()  # type: ignore[return-value]  # fmt: skip


def test_a_generation_is_in_force_from_its_commit_not_from_the_start_of_its_publish(
    city_factory: Callable[[], str], sample_city: SampleCity, tmp_path: Path
) -> None:
    """The publish of a big city runs for half a minute, during which the previous
    generation still serves every lookup and report: ``activated_at`` (what ``as_of``
    timestamps resolve by) and the moves of open events must not predate it."""
    url = city_factory()
    path, codes = _redivision(sample_city, tmp_path)
    engine = make_engine(url)
    x, y = _point_in(url, codes["removed"][0])
    with session_scope(engine) as session:
        report = Report(source="resident", category="social.parking", lon=x, lat=y)
        event_id = create_event(session, report, now=datetime.now(UTC)).event.id
    still_old: list[datetime] = []

    def meanwhile(fraction: float, message: str) -> None:
        if message == "activating":  # staged and checked; the old generation serves on
            time.sleep(0.3)
            with psycopg.connect(url) as other:
                still_old.append(other.execute("SELECT clock_timestamp()").fetchone()[0])  # type: ignore[index]  # fmt: skip

    with psycopg.connect(url) as conn:
        plan = prepare_import(conn, path, "grid")
        conn.rollback()
        gen = commit_plan(conn, plan, progress=meanwhile).generation_id
        activated, moved_at = conn.execute(
            "SELECT (SELECT activated_at FROM generations WHERE id = %s), (SELECT max(at) FROM "
            "event_transitions WHERE event_id = %s AND action = 'reassign')", (gen, event_id)
        ).fetchone()  # type: ignore[misc]  # fmt: skip
    engine.dispose()
    assert activated > still_old[0] and moved_at > still_old[0]
    assert LookupService(url).snapshot(still_old[0]).generation == 1


def test_reports_are_stored_while_a_generation_is_activated_and_features_re_assigned(
    city_factory: Callable[[], str], sample_city: SampleCity, tmp_path: Path
) -> None:
    """Intake does not wait for a publisher's activation and re-assignment (seconds for
    a big re-division): the publisher defers its layer-version bumps, whose row locks
    every stored report needs, to the moment before its commit."""
    url = city_factory()
    path, codes = _redivision(sample_city, tmp_path)
    engine = make_engine(url)
    x, y = _point_in(url, codes["changed"][0])
    stored: dict[str, int] = {}

    def meanwhile(fraction: float, message: str) -> None:
        if message == "activating" or message.startswith("re-assigning"):
            with session_scope(engine) as session:
                # a wait for the publisher (same thread) fails the test instead of hanging it
                session.execute(text("SET LOCAL lock_timeout = '2s'"))
                report = Report(source="resident", category="social.parking", lon=x, lat=y)
                stored[message] = create_event(session, report, now=datetime.now(UTC)).event.id

    with psycopg.connect(url) as conn:
        plan = prepare_import(conn, path, "grid")
        conn.rollback()
        assert commit_plan(conn, plan, progress=meanwhile).committed
        found = conn.execute("SELECT count(*) FROM events WHERE id = ANY(%s)",
                             (list(stored.values()),)).fetchone()  # fmt: skip
    engine.dispose()
    assert len(stored) == 2 and found == (2,)
