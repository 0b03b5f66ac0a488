"""Facilities ("components", 部件): points with a 16-digit code.

Code = 6-digit area code + 2-digit major class + 2-digit minor class + 6-digit sequence.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    CheckConstraint,
    Computed,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models.base import Base

FACILITY_STATES = ("intact", "damaged", "lost", "removed")


class Department(Base):
    """A government department or company that owns or maintains things."""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False, default="government")


class FacilityCategory(Base):
    """A (major, minor) class of the component catalog, e.g. 01/01 water manhole cover."""

    __tablename__ = "facility_categories"

    major_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    minor_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    major_name: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    name_en: Mapped[str] = mapped_column(Text, nullable=False)
    owner_department_code: Mapped[str | None] = mapped_column(
        ForeignKey("departments.code"), nullable=True
    )
    maintainer_department_code: Mapped[str | None] = mapped_column(
        ForeignKey("departments.code"), nullable=True
    )


class Facility(Base):
    """One component on the map."""

    __tablename__ = "facilities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True, nullable=False)
    major_code: Mapped[str] = mapped_column(String(2), nullable=False)
    minor_code: Mapped[str] = mapped_column(String(2), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False, default="")
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="intact")
    grid_code: Mapped[str | None] = mapped_column(String(15))
    owner_department_code: Mapped[str | None] = mapped_column(String(32))
    maintainer_department_code: Mapped[str | None] = mapped_column(String(32))
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    # Kept by PostgreSQL (stored generated column): the tiles read it, nobody writes it.
    geom_3857 = mapped_column(
        Geometry("POINT", srid=3857, spatial_index=False),
        Computed("ST_Transform(geom, 3857)", persisted=True),
    )

    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{16}$'", name="code_format"),
        CheckConstraint(
            "substr(code, 7, 2) = major_code AND substr(code, 9, 2) = minor_code",
            name="code_matches_class",
        ),
        CheckConstraint(
            "state IN ('intact','damaged','lost','removed')", name="state_known"
        ),
        ForeignKeyConstraint(
            ["major_code", "minor_code"],
            ["facility_categories.major_code", "facility_categories.minor_code"],
        ),
        Index("ix_facilities_geom", "geom", postgresql_using="gist"),
        Index("ix_facilities_grid_code", "grid_code"),
        Index("ix_facilities_class", "major_code", "minor_code"),
    )
