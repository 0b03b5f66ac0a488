"""API response and request models (separate from the table models)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    error: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)


class HealthOut(BaseModel):
    status: str = Field(description="ok or degraded")
    database: str
    postgis_version: str | None = None
    active_generation: int | None = None


class AreaOut(BaseModel):
    code: str
    level: str
    name: str
    parent_code: str | None
    generation_low: int
    generation_high: int | None


class AreaDetailOut(AreaOut):
    ancestors: list[AreaOut]
    bbox: tuple[float, float, float, float]
    generation: int


class WorkerOut(BaseModel):
    code: str
    name: str
    role: str
    on_duty: bool


class GridProfileOut(BaseModel):
    grid: AreaOut
    ancestors: list[AreaOut]
    persons: int
    households: int
    buildings: int
    care: dict[str, int] = Field(description="persons per care tag")
    facilities_by_class: dict[str, int] = Field(description="facilities per major+minor class")
    workers: list[WorkerOut]


class AreaHitOut(AreaOut):
    bbox: tuple[float, float, float, float]
