"""Data versions of the map layers (what tile caches compare their entries with)."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, DateTime, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models.base import Base


class LayerVersion(Base):
    """One counter per map layer, bumped whenever data under the layer changes."""

    __tablename__ = "layer_versions"

    layer: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=1)
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class LayerChange(Base):
    """Which version of a layer changed where (``bbox`` NULL: the whole layer)."""

    __tablename__ = "layer_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    layer: Mapped[str] = mapped_column(String(32), nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    bbox = mapped_column(Geometry("POLYGON", srid=3857, spatial_index=False))
    changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (Index("ix_layer_changes_layer_version", "layer", "version"),)
