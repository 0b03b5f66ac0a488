"""People → household → building → grid (人进户，户进房，房进格，格进图).

Only buildings carry a grid code; households and persons reach their grid through
their building, so a re-division re-assigns buildings and nothing else moves.
ID numbers and phones are personal data: stored here, masked in every output.
"""

from __future__ import annotations

from datetime import date

from geoalchemy2 import Geometry
from sqlalchemy import ARRAY, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models.base import Base

CARE_TAGS = (
    "elderly_living_alone",
    "elderly",
    "disabled",
    "special_care",
    "low_income",
    "left_behind_child",
)


class Building(Base):
    """A building footprint placed into the grid that covers its interior point."""

    __tablename__ = "buildings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    address: Mapped[str] = mapped_column(Text, nullable=False)
    floors: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    use: Mapped[str] = mapped_column(String(32), nullable=False, default="residential")
    grid_code: Mapped[str | None] = mapped_column(String(15))
    geom = mapped_column(Geometry("POLYGON", srid=4326, spatial_index=False), nullable=False)
    geom_3857 = mapped_column(Geometry("POLYGON", srid=3857, spatial_index=False), nullable=False)

    __table_args__ = (
        Index("ix_buildings_geom", "geom", postgresql_using="gist"),
        Index("ix_buildings_grid_code", "grid_code"),
    )


class Household(Base):
    """A household living in one unit of a building."""

    __tablename__ = "households"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    building_id: Mapped[int] = mapped_column(
        ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False, index=True
    )
    room: Mapped[str] = mapped_column(String(16), nullable=False, default="")


class Person(Base):
    """A resident. ``id_number`` and ``phone`` are personal data (masked on output)."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(
        ForeignKey("households.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(Text, nullable=False)
    id_number: Mapped[str] = mapped_column(String(18), nullable=False)
    phone: Mapped[str | None] = mapped_column(String(20))
    birth_date: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(1))
    care_tags: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, default=list)

    __table_args__ = (Index("ix_persons_care_tags", "care_tags", postgresql_using="gin"),)
