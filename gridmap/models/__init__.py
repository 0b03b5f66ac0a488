"""SQLAlchemy + GeoAlchemy2 tables. The schema changes only through Alembic migrations."""

from gridmap.models.areas import CODE_LENGTHS, LEVEL_ORDER, Area, Generation, Level
from gridmap.models.auth import ROLES, ApiKey, AuditEntry, User
from gridmap.models.base import Base
from gridmap.models.events import (
    Device,
    Event,
    EventCategory,
    EventPhoto,
    EventTransition,
    SensorRule,
    Webhook,
    WebhookDelivery,
    WorkPeriod,
)
from gridmap.models.facilities import Department, Facility, FacilityCategory
from gridmap.models.imports import IMPORT_STATES, ImportJob
from gridmap.models.layers import LayerChange, LayerVersion
from gridmap.models.population import CARE_TAGS, Building, Household, Person
from gridmap.models.workers import WORKER_ROLES, Worker, WorkerAssignment

__all__ = [
    "ApiKey",
    "AuditEntry",
    "ROLES",
    "User",
    "Area",
    "Base",
    "Building",
    "CARE_TAGS",
    "CODE_LENGTHS",
    "Department",
    "Device",
    "Event",
    "EventCategory",
    "EventPhoto",
    "EventTransition",
    "SensorRule",
    "Webhook",
    "WebhookDelivery",
    "WorkPeriod",
    "Facility",
    "FacilityCategory",
    "Generation",
    "Household",
    "IMPORT_STATES",
    "ImportJob",
    "LEVEL_ORDER",
    "LayerChange",
    "LayerVersion",
    "Level",
    "Person",
    "WORKER_ROLES",
    "Worker",
    "WorkerAssignment",
]
