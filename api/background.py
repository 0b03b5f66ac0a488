"""Background work started in the app's lifespan: deadlines, sensors, webhooks, MQTT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from gridmap.events import scheduler
from gridmap.events.notify import httpx_poster
from gridmap.events.settings import get_event_settings

log = logging.getLogger("gridmap.api.background")


async def _every(seconds: float, work: Any, *args: Any) -> None:
    while True:
        try:
            await asyncio.to_thread(work, *args)
        except Exception:  # noqa: BLE001 - a failed round is logged and retried next period
            log.exception("background round failed")
        await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def event_tasks(app: FastAPI) -> AsyncIterator[None]:
    """Run the scheduler, the webhook deliverer and (if configured) the MQTT listener."""
    settings = get_event_settings()
    engine, clock = app.state.engine, app.state.clock
    tasks = []
    if settings.scheduler_interval_s > 0:
        tasks.append(asyncio.create_task(
            _every(settings.scheduler_interval_s, scheduler.run_deadlines, engine, clock)))
    if settings.webhook_interval_s > 0:
        tasks.append(asyncio.create_task(_every(
            settings.webhook_interval_s, scheduler.run_webhooks, engine, clock,
            httpx_poster())))
    listener = None
    if settings.mqtt_host:
        from gridmap.events.sensors import MqttListener

        listener = MqttListener(engine, clock, settings.mqtt_host, settings.mqtt_port)
        listener.start()
    app.state.mqtt = listener
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        if listener is not None:
            listener.stop()
