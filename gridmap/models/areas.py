"""Administrative division: generations and areas (city → district → street → community → grid).

Areas are versioned as in MapIt: a row is valid from ``generation_low`` to
``generation_high`` (inclusive; NULL = still valid). A re-division adds rows and closes
old ones; it never rewrites history.
"""

from __future__ import annotations

import enum
from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models.base import Base


class Level(enum.StrEnum):
    """Area levels, top to bottom, with the length of their codes."""

    city = "city"
    district = "district"
    street = "street"
    community = "community"
    grid = "grid"

    @property
    def code_length(self) -> int:
        return CODE_LENGTHS[self]

    @property
    def depth(self) -> int:
        return LEVEL_ORDER.index(self)


LEVEL_ORDER = [Level.city, Level.district, Level.street, Level.community, Level.grid]
CODE_LENGTHS = {
    Level.city: 6,
    Level.district: 6,
    Level.street: 9,
    Level.community: 12,
    Level.grid: 15,
}


class Generation(Base):
    """One version of the division. Exactly one generation is active at a time."""

    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Levels whose areas in this generation passed the import's coverage checks (clean
    # coverage inside their parents); imports of those levels then re-check only changes.
    checked_levels: Mapped[list[str]] = mapped_column(
        ARRAY(String(12)), default=list, server_default=text("'{}'::varchar[]")
    )

    __table_args__ = (
        Index("uq_generations_one_active", "active", unique=True, postgresql_where=text("active")),
    )


class Area(Base):
    """An area of any level, valid over a range of generations."""

    __tablename__ = "areas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(15), nullable=False)
    level: Mapped[str] = mapped_column(String(12), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    parent_code: Mapped[str | None] = mapped_column(String(15))
    # Both name generations (ids): the triggers of migration 0016 keep them so, once per
    # statement, as foreign keys would row by row.
    generation_low: Mapped[int] = mapped_column(Integer, nullable=False)
    generation_high: Mapped[int | None] = mapped_column(Integer)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)
    geom_3857 = mapped_column(
        Geometry("MULTIPOLYGON", srid=3857, spatial_index=False), nullable=False
    )

    __table_args__ = (
        CheckConstraint(
            "level IN ('city','district','street','community','grid')", name="level_known"
        ),
        CheckConstraint(
            "(level IN ('city','district') AND code ~ '^[0-9]{6}$')"
            " OR (level = 'street' AND code ~ '^[0-9]{9}$')"
            " OR (level = 'community' AND code ~ '^[0-9]{12}$')"
            " OR (level = 'grid' AND code ~ '^[0-9]{15}$')",
            name="code_format",
        ),
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        CheckConstraint(
            "generation_high IS NULL OR generation_high >= generation_low", name="generation_range"
        ),
        Index("ix_areas_geom", "geom", postgresql_using="gist"),
        Index("ix_areas_parent_code", "parent_code"),
        Index("ix_areas_level_code", "level", "code"),
        # A code valid at most once per generation: one open row per code here, and
        # the trigger gridmap_areas_code_ranges (migration 0013) for closed ranges,
        # which probes ix_areas_generation_high.
        Index("uq_areas_open_code", "code", unique=True,
              postgresql_where=text("generation_high IS NULL")),
        Index("ix_areas_generation_high", "generation_high",
              postgresql_where=text("generation_high IS NOT NULL")),
    )
