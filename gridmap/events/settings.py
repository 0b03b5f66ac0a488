"""Settings of the events capability (same ``GRIDMAP_`` prefix, split by concern)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class EventSettings(BaseSettings):
    """Scheduler period, MQTT broker, request limits."""

    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", env_file=None, extra="ignore")

    scheduler_interval_s: float = 30.0
    webhook_interval_s: float = 1.0
    mqtt_host: str | None = None
    mqtt_port: int = 1883
    events_max_body_bytes: int = 16 * 1024 * 1024


@lru_cache
def get_event_settings() -> EventSettings:
    """The event settings of this process."""
    return EventSettings()
