"""An injectable clock, so that tests (and replays) control time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything with ``now()`` returning an aware datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        """The current time."""
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until told to move (for tests)."""

    def __init__(self, start: datetime):
        self._now = start

    def now(self) -> datetime:
        """The time this clock was set to."""
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when``."""
        self._now = when

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)`` and return the new time."""
        self._now = self._now + timedelta(**delta)
        return self._now
