"""Settings, split by concern, all under the ``GRIDMAP_`` environment prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-wide settings.

    ``database_url`` unset means: run the embedded PostgreSQL+PostGIS cluster under
    ``data_dir`` (see :mod:`gridmap.db.cluster`).
    """

    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", env_file=None, extra="ignore")

    database_url: str | None = None
    data_dir: Path = Path(".gridmap")
    statement_timeout_ms: int = 30_000
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    import_max_bytes: int = 1 << 30
    """Largest import file (or unpacked zip) accepted, in bytes."""


@lru_cache
def get_settings() -> Settings:
    """The settings of this process (read once from the environment)."""
    return Settings()
