"""The text report's wording."""

from __future__ import annotations

import pytest

from gridmap.ingest.checks import Report, _reassignment_text


@pytest.mark.parametrize(("tiled", "checked", "lines"), [
    (1, 1, ["1 feature tiles its parent exactly", "(1 feature)"]),
    (2, 0, ["2 features tile their parents exactly", "(0 features)"]),
])  # fmt: skip
def test_the_report_counts_tiled_and_checked_features_in_words(
    tiled: int, checked: int, lines: list[str]
) -> None:
    report = Report("grid", "grid.gpkg", 2, None, "EPSG:4326", "read from the file", "UTF-8",
                    {}, coverage={"tiled": tiled, "scope": "changed",
                                  "features_checked": checked})  # fmt: skip
    text = report.to_text()
    assert all(line in text for line in lines), text


def test_the_reassignment_summary_says_one_in_the_singular() -> None:
    summary = {"buildings_moved": 1, "persons_moved": 8, "facilities_moved": 1,
               "workers_moved": 0, "events_moved": 2,
               "per_grid": {"500103001001001": {"buildings": 1, "facilities": 1, "persons": 8},
                            "500103001001002": {"events": 2}}}  # fmt: skip
    assert _reassignment_text(summary, limit=1) == [
        "  re-assigned: 1 building, 8 persons, 1 facility, 0 workers, 2 events",
        "    into 500103001001001: 1 building, 1 facility, 8 persons",
        "    … 1 more grid (use --json for all)",
    ]
