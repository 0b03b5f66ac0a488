"""Event statistics by area level and category (结案率, 按期结案率, 返工率 …).

The cohort is the events reported in [from, to) inside the area: closure rate = closed /
accepted; on-time closure rate = closed by the deadline / closed; rework rate = events
sent back at least once / accepted; mean handling time = accepted → closed, in hours;
overdue now = running events past their deadline at ``now``; satisfaction = mean rating.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import datetime
from importlib import resources
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInputError
from gridmap.models import CODE_LENGTHS, Level

LEVELS = ("grid", "community", "street", "district")
_SQL = resources.files("gridmap.events").joinpath("stats.sql").read_text()


@dataclass
class Figures:
    """The figures of one group (area and/or category)."""

    area: str | None
    category: str | None
    reported: int
    accepted: int
    closed: int
    closed_on_time: int
    reworked: int
    overdue_now: int
    closure_rate: float | None
    on_time_closure_rate: float | None
    rework_rate: float | None
    mean_handling_hours: float | None
    satisfaction: float | None


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _figures(row: Any) -> Figures:
    return Figures(
        area=row.area, category=row.category, reported=row.reported, accepted=row.accepted,
        closed=row.closed, closed_on_time=row.closed_on_time, reworked=row.reworked,
        overdue_now=row.overdue_now,
        closure_rate=_ratio(row.closed, row.accepted),
        on_time_closure_rate=_ratio(row.closed_on_time, row.closed),
        rework_rate=_ratio(row.reworked, row.accepted),
        mean_handling_hours=None if row.mean_handling_hours is None
        else round(float(row.mean_handling_hours), 3),
        satisfaction=None if row.satisfaction is None else round(float(row.satisfaction), 3),
    )


def _check(level: str, code: str | None) -> None:
    if level not in LEVELS:
        raise InvalidInputError(f"level must be one of {', '.join(LEVELS)}, not {level!r}",
                                details=[{"field": "level", "problem": "unknown level"}])
    if code is not None and (not code.isdigit() or len(code) not in (6, 9, 12, 15)
                             or len(code) > CODE_LENGTHS[Level(level)]):
        raise InvalidInputError(
            f"code {code!r} is not a district/street/community/grid code at or above {level}",
            details=[{"field": "code", "problem": "bad area code"}])


def compute(session: Session, *, level: str, code: str | None, start: datetime,
            end: datetime, now: datetime) -> dict[str, Any]:
    """Totals, by area (at ``level``) and by category, for the cohort described above."""
    _check(level, code)
    if end <= start:
        raise InvalidInputError("'to' must be after 'from'",
                                details=[{"field": "to", "problem": "not after from"}])
    params = {"from": start, "to": end, "now": now, "prefix": (code or "") + "%",
              "code": code}

    def run(key_len: int, by_category: bool) -> list[Figures]:
        sql = text(_SQL)
        rows = session.execute(sql, {**params, "key_len": key_len, "by_category": by_category})
        return [_figures(r) for r in rows]

    totals = run(0, False)
    return {
        "level": level, "code": code, "from": start.isoformat(), "to": end.isoformat(),
        "total": asdict(totals[0]) if totals else asdict(_empty(code)),
        "by_area": [asdict(f) for f in run(CODE_LENGTHS[Level(level)], False)],
        "by_category": [asdict(f) for f in run(0, True)],
    }


def _empty(code: str | None) -> Figures:
    return Figures(code, None, 0, 0, 0, 0, 0, 0, None, None, None, None, None)


def to_csv(result: dict[str, Any]) -> str:
    """The statistics as CSV: one row per group (scope = total, area or category)."""
    out = io.StringIO()
    names = ["scope", *Figures.__dataclass_fields__]
    writer = csv.DictWriter(out, fieldnames=names)
    writer.writeheader()
    writer.writerow({"scope": "total", **result["total"]})
    for row in result["by_area"]:
        writer.writerow({"scope": "area", **row})
    for row in result["by_category"]:
        writer.writerow({"scope": "category", **row})
    return out.getvalue()
