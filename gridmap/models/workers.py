"""Grid workers and their grid assignments."""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models.base import Base

WORKER_ROLES = ("grid_leader", "full_time", "part_time")


class Worker(Base):
    """A grid leader or a full-/part-time grid worker."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    phone: Mapped[str | None] = mapped_column(String(20))
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    on_duty: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    __table_args__ = (
        CheckConstraint("role IN ('grid_leader','full_time','part_time')", name="role_known"),
    )


class WorkerAssignment(Base):
    """A worker assigned to a grid (by grid code, which survives re-divisions)."""

    __tablename__ = "worker_assignments"

    worker_id: Mapped[int] = mapped_column(
        ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True
    )
    grid_code: Mapped[str] = mapped_column(String(15), primary_key=True)

    __table_args__ = (Index("ix_worker_assignments_grid_code", "grid_code"),)
