"""API response and request models (separate from the table models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

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
    counted: Literal["assigned", "located"] = Field(
        description="assigned: what is assigned to the grid (the active generation); "
        "located: today's buildings and facilities lying in the grid of the generation asked "
        "for, when it is not the active one")


class NamedArea(BaseModel):
    code: str
    name: str


class LookupGrid(NamedArea):
    generation: int


class LookupQuery(BaseModel):
    crs: str
    lon: float = Field(description="the point in EPSG:4326 after conversion")
    lat: float


class LookupOut(BaseModel):
    query: LookupQuery
    generation: int
    grid: LookupGrid | None = Field(description="null when the point is outside every grid")
    ancestors: dict[str, NamedArea] = Field(
        description="community, street, district, city of the grid"
    )
    workers: list[WorkerOut] = Field(description="the grid's workers, on duty first")
    distance_m: float | None = Field(
        default=None, description="with snap: metres to the grid (0 inside it)"
    )


class LookupResult(BaseModel):
    grid: str | None
    error: str | None = None
    distance_m: float | None = None


class LookupBatchOut(BaseModel):
    generation: int
    count: int
    errors: int
    results: list[LookupResult]


class ImportJobOut(BaseModel):
    id: int
    level: str
    filename: str
    status: str = Field(description="queued, checking, checked, failed, committing, committed")
    progress: float = Field(description="0–1")
    message: str
    report: dict[str, Any] | None = Field(
        default=None, description="checks, findings, diff and (after commit) re-assignment"
    )
    generation_id: int | None = None


class GenerationOut(BaseModel):
    id: int
    description: str
    created_at: datetime
    activated_at: datetime | None
    superseded_at: datetime | None = Field(
        description="when the next generation was activated (null: still active)")
    active: bool
    previous: int | None = Field(description="the generation active before this one")


class LevelChangesOut(BaseModel):
    level: str
    added: int
    removed: int
    changed: int = Field(description="closed and written again (geometry, name or parent)")
    unchanged: int
    added_codes: list[str] = Field(description="the first `limit` codes, in code order")
    removed_codes: list[str]
    changed_codes: list[str]


class GenerationChangesOut(BaseModel):
    generation: GenerationOut
    levels: list[LevelChangesOut] = Field(
        description="the levels this generation changed, against the previous one")


class AreaHitOut(AreaOut):
    bbox: tuple[float, float, float, float]


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class PrincipalOut(BaseModel):
    kind: str
    name: str
    role: str
    area_code: str | None = None


class LoginOut(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>` (or use the cookie)")
    expires_in: int
    principal: PrincipalOut


class PersonOut(BaseModel):
    id: int
    name: str
    id_number: str = Field(description="masked (110***********1234) unless the role needs it")
    phone: str | None = Field(description="masked unless the role needs it")
    birth_date: str | None
    gender: str | None
    care_tags: list[str]
    household_code: str
    room: str
    building_code: str
    address: str
    grid_code: str | None


class ResidentsOut(BaseModel):
    grid: str
    total: int
    limit: int
    offset: int
    residents: list[PersonOut]


class AuditEntryOut(BaseModel):
    id: int
    at: str
    actor: str
    role: str
    action: str
    resource: str
    record_id: str
    detail: dict[str, Any]
