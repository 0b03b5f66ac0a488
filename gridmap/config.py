"""Settings, split by concern, all under the ``GRIDMAP_`` environment prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets that appear in examples and must never protect a real deployment.
KNOWN_DEFAULT_SECRETS = {"", "secret", "changeme", "change-me", "changethis", "gridmap"}


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

    # Map layers (vector tiles, OGC API – Features, the web page).
    tile_cache_size: int = 20_000
    """Tiles kept in memory per process; 0 turns the server-side cache off."""
    tile_feature_cap: int = 5_000
    """At most this many features per layer in one tile."""
    tile_version_ttl_s: float = 1.0
    """How long a process trusts its snapshot of ``layer_versions`` (0: check every tile)."""
    tile_pool_size: int = 8
    """Connections per process that build missing tiles on the event loop (0: misses go
    through the FastAPI route and its thread pool instead). Fewer connections than
    concurrent misses make requests queue in the pool: with 8 concurrent clients, 4
    connections cost ~0.1 ms more Python per tile than 8 and served ~35 % fewer tiles."""
    tile_max_age_s: int = 60
    """``Cache-Control: max-age`` of tiles (clients revalidate with the ETag after that)."""
    basemap_url: str | None = None
    """Raster base-map tile URL template ({z}/{x}/{y}); none: a plain background."""
    web_vendor_dir: Path | None = None
    """Where npm installed the page's scripts (default: node_modules of the repository)."""

    # Access control and limits.
    environment: str = "development"
    """``development`` allows a generated secret; anything else requires ``secret_key``."""
    secret_key: SecretStr | None = None
    """Signs session tokens (at least 32 characters outside development)."""
    session_ttl_s: int = 8 * 3600
    """How long a login session lasts."""
    auth_cache_ttl_s: float = 2.0
    """How long a process trusts its in-memory copy of keys and users (revocation delay)."""
    rate_limit_per_minute: int = 120_000
    """Requests per minute per API key or user (0: no limit). Dispatch systems call the
    lookup thousands of times a second, so the default is per-machine scale."""
    rate_limit_ip_per_minute: int = 240_000
    """Requests per minute per client address (0: no limit)."""
    max_body_bytes: int = 1 << 20
    """Largest request body outside uploads and batch lookups."""
    lookup_max_body_bytes: int = 512 << 20
    """Largest batch lookup body (~17 M points of CSV)."""
    import_max_vertices: int = 1_000_000
    """An imported feature with more vertices than this is refused."""

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        """Outside development a real secret is required (never a built-in default)."""
        if self.environment == "development":
            return self
        secret = self.secret_key.get_secret_value() if self.secret_key else ""
        if secret.lower() in KNOWN_DEFAULT_SECRETS or len(secret) < 32:
            raise ValueError(
                f"GRIDMAP_SECRET_KEY must be set to a random string of at least 32 characters "
                f"when GRIDMAP_ENVIRONMENT={self.environment!r} (e.g. `openssl rand -hex 32`)"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    """The settings of this process (read once from the environment)."""
    return Settings()
