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
    lookup_max_body_bytes: int = 512 << 20  # batch lookups: ~17 M points of CSV
    """Largest import file (or unpacked zip) accepted, in bytes."""

    # Map layers (vector tiles, OGC API – Features, the web page).
    tile_cache_size: int = 20_000
    """Tiles kept in memory per process; 0 turns the server-side cache off."""
    tile_feature_cap: int = 5_000
    """At most this many features per layer in one tile."""
    tile_version_ttl_s: float = 1.0
    """How long a process trusts its snapshot of ``layer_versions`` (0: check every tile)."""
    tile_max_age_s: int = 60
    """``Cache-Control: max-age`` of tiles (clients revalidate with the ETag after that)."""
    basemap_url: str | None = None
    """Raster base-map tile URL template ({z}/{x}/{y}); none: a plain background."""
    web_vendor_dir: Path | None = None
    """Where npm installed the page's scripts (default: node_modules of the repository)."""


@lru_cache
def get_settings() -> Settings:
    """The settings of this process (read once from the environment)."""
    return Settings()
