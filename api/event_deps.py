"""Dependencies of the events routers: the injectable clock."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gridmap.events.clock import Clock


async def get_clock(request: Request) -> Clock:
    """The clock set at start-up (``app.state.clock``; a FixedClock in tests).

    ``async`` because it only reads app state: a plain ``def`` would hop to the thread pool.
    """
    clock: Clock = request.app.state.clock
    return clock


ClockDep = Annotated[Clock, Depends(get_clock)]
