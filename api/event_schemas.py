"""Request and response models of the events, stats and sensors routers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Source = Literal["resident", "grid_worker", "sensor", "hotline", "external"]
Role = Literal["operator", "grid_worker", "department", "reporter", "system", "admin"]


class EventIn(BaseModel):
    source: Source = "resident"
    category: str = Field(description="leaf category code, e.g. urban.appearance.exposed_garbage")
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    crs: Literal["wgs84", "cgcs2000", "gcj02"] = "wgs84"
    description: str = Field("", max_length=4000)
    address: str | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = Field(None, max_length=32)
    reporter_email: str | None = None
    facility_code: str | None = Field(None, pattern=r"^[0-9]{16}$")
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    affair_class: Literal["official", "family", "collaborative"] | None = None
    media_urls: list[str] = Field(default_factory=list, max_length=9)
    photos: list[str] = Field(default_factory=list, max_length=9,
                              description="base64-encoded JPEG/PNG/GIF/WebP images")


class ReporterOut(BaseModel):
    name: str | None
    phone: str | None
    email: str | None


class EventOut(BaseModel):
    id: int
    source: str
    category: str
    affair_class: str
    priority: str
    status: str
    lon: float
    lat: float
    address: str | None
    description: str
    reporter: ReporterOut = Field(description="masked personal data")
    facility_code: str | None
    device_id: str | None
    media_urls: list[str]
    grid_code: str | None
    generation: int | None
    worker_code: str | None
    department_code: str | None
    handler_level: str
    queue: str
    flagged: bool = Field(description="outside every grid: in the command-center queue")
    assignment_reason: str
    escalation_level: str
    deadline: str | None
    traffic_light: str | None = Field(description="green, yellow, red (overdue) or null")
    rework_count: int
    duplicate_of: int | None
    satisfaction: int | None
    created_at: str | None
    updated_at: str | None
    accepted_at: str | None
    resolved_at: str | None
    closed_at: str | None
    allowed_actions: list[str] = Field(default_factory=list)


class IntakeOut(BaseModel):
    event: EventOut
    created: bool = Field(description="false when the Idempotency-Key was seen before")
    original: EventOut | None = Field(None, description="the open event this duplicates")


class ActionIn(BaseModel):
    action: str = Field(description="accept, reject, dispatch, start, resolve, verify, "
                        "fail_verification, close, escalate, request_extension, extend, "
                        "suspend, resume, rate")
    role: Role | None = Field(None, description="act in this role (default: the caller's "
                              "own; admins may name any, system keys also department)")
    actor: str | None = Field(None, min_length=1, max_length=200,
                              description="the person a system or admin key acts for; "
                              "the audit records the caller, then this name")
    note: str = Field("", max_length=4000)
    hours: float | None = Field(None, description="extend: working hours to add")
    rating: int | None = Field(None, description="rate: 1 to 5")
    photos: list[str] = Field(default_factory=list, max_length=9,
                              description="resolve: base64 images of the result")


class TransitionOut(BaseModel):
    action: str
    from_status: str | None
    to_status: str
    actor: str
    role: str
    note: str
    at: str


class CategoryOut(BaseModel):
    code: str
    parent_code: str | None
    name: str
    name_en: str
    kind: str
    leaf: bool
    affair_class: str
    department_code: str | None
    priority: str
    deadline_hours: float
    round_the_clock: bool


class StatsOut(BaseModel):
    level: str
    code: str | None
    from_: str = Field(alias="from")
    to: str
    total: dict[str, Any]
    by_area: list[dict[str, Any]]
    by_category: list[dict[str, Any]]


class DeviceIn(BaseModel):
    device_id: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1, max_length=32)
    household_id: int | None = None
    facility_code: str | None = Field(None, pattern=r"^[0-9]{16}$")


class DeviceOut(BaseModel):
    device_id: str
    kind: str
    household_id: int | None
    facility_code: str | None


class ReadingOut(BaseModel):
    device_id: str
    kind: str
    events: list[int] = Field(description="ids of events the reading opened")


class WebhookIn(BaseModel):
    url: str


class WebhookOut(BaseModel):
    id: int
    url: str
    active: bool
