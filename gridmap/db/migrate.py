"""Running Alembic migrations from code (the CLI, tests and the demo use this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from gridmap.db.engine import libpq_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at ``migrations/`` and at ``url`` (default: configured)."""
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.attributes["database_url"] = libpq_url(url)
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate the database up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Migrate the database down to ``revision``."""
    command.downgrade(alembic_config(url), revision)
