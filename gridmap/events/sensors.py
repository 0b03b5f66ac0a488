"""Sensors: devices registered to households or facilities, and rules (data) that open events.

Readings arrive over MQTT (topic ``gridmap/sensors/{device_id}/{kind}``, JSON payload) or an
HTTP webhook; both call :func:`handle_reading`. Absence of readings is checked by
:func:`check_silent_devices`, run by the scheduler.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, any_, exists, func, literal, select
from sqlalchemy.orm import Session

from gridmap.errors import GridmapError, InvalidInputError, NotFoundError
from gridmap.events.intake import Report, create_event
from gridmap.models import Building, Device, Facility, Household, Person, SensorRule

log = logging.getLogger("gridmap.events.sensors")
TOPIC_PREFIX = "gridmap/sensors"


def register_device(session: Session, device_id: str, kind: str, *,
                    household_id: int | None = None, facility_code: str | None = None,
                    now: datetime) -> Device:
    """Register (or re-register) a device to a household or a facility."""
    if (household_id is None) == (facility_code is None):
        raise InvalidInputError("register a device to exactly one household or facility",
                                details=[{"field": "household_id/facility_code",
                                          "problem": "exactly one is required"}])
    if household_id is not None and session.get(Household, household_id) is None:
        raise NotFoundError(f"household {household_id} does not exist")
    if facility_code is not None and session.scalar(
        select(func.count()).where(Facility.code == facility_code)
    ) == 0:
        raise NotFoundError(f"facility {facility_code} does not exist")
    device = session.get(Device, device_id) or Device(device_id=device_id)
    device.kind, device.household_id, device.facility_code = kind, household_id, facility_code
    device.last_activity_at = now
    session.add(device)
    session.flush()
    return device


def device_location(session: Session, device: Device) -> tuple[float, float]:
    """WGS84 (lon, lat) of the device's household building or facility."""
    if device.household_id is not None:
        point = session.execute(
            select(func.ST_X(func.ST_PointOnSurface(Building.geom)),
                   func.ST_Y(func.ST_PointOnSurface(Building.geom)))
            .join(Household, Household.building_id == Building.id)
            .where(Household.id == device.household_id)
        ).one()
    else:
        point = session.execute(
            select(func.ST_X(Facility.geom), func.ST_Y(Facility.geom))
            .where(Facility.code == device.facility_code)
        ).one()
    return float(point[0]), float(point[1])


def _open_event(session: Session, device: Device, rule: SensorRule, now: datetime) -> int:
    lon, lat = device_location(session, device)
    report = Report(source="sensor", category=rule.category_code, lon=lon, lat=lat,
                    description=f"{rule.description} (device {device.device_id})",
                    device_id=device.device_id, household_id=device.household_id,
                    facility_code=device.facility_code, priority=rule.priority)
    event = create_event(session, report, now=now).event
    device.last_alert_at = now
    return event.id


def handle_reading(session: Session, device_id: str, kind: str, payload: dict[str, Any],
                   now: datetime) -> list[int]:
    """Record a reading (activity unless ``{"activity": false}``) and apply value rules."""
    device = session.get(Device, device_id, with_for_update=True)
    if device is None:
        raise NotFoundError(f"device {device_id!r} is not registered")
    if kind != device.kind:
        raise InvalidInputError(f"device {device_id} is a {device.kind} sensor, not {kind}",
                                details=[{"field": "kind", "problem": "does not match"}])
    if payload.get("activity", True):
        device.last_activity_at = now
    opened = []
    rules = session.scalars(select(SensorRule).where(
        SensorRule.kind == kind, SensorRule.trigger == "value").order_by(SensorRule.id))
    for rule in rules:
        if rule.field and str(payload.get(rule.field)).lower() == (rule.match or "").lower():
            opened.append(_open_event(session, device, rule, now))
    return opened


def check_silent_devices(session: Session, now: datetime) -> list[int]:
    """Open an event for every device silent longer than a silence rule allows (once per spell)."""
    opened = []
    for rule in session.scalars(select(SensorRule).where(SensorRule.trigger == "silence")):
        stmt = select(Device).where(
            Device.kind == rule.kind,
            Device.last_activity_at < now - timedelta(hours=rule.silence_hours or 0),
            (Device.last_alert_at.is_(None)) | (Device.last_alert_at < Device.last_activity_at),
        )
        if rule.care_tag:
            stmt = stmt.where(exists().where(Person.household_id == Device.household_id,
                                             literal(rule.care_tag) == any_(Person.care_tags)))
        for device in session.scalars(stmt.with_for_update(skip_locked=True)):
            opened.append(_open_event(session, device, rule, now))
    return opened


def parse_topic(topic: str) -> tuple[str, str]:
    """(device_id, kind) from ``gridmap/sensors/{device_id}/{kind}``."""
    parts = topic.split("/")
    if len(parts) != 4 or "/".join(parts[:2]) != TOPIC_PREFIX or not all(parts[2:]):
        raise InvalidInputError(f"topic {topic!r} is not {TOPIC_PREFIX}/{{device_id}}/{{kind}}")
    return parts[2], parts[3]


class MqttListener:
    """Subscribes to ``gridmap/sensors/+/+`` and feeds readings to :func:`handle_reading`."""

    def __init__(self, engine: Engine, clock: Any, host: str = "127.0.0.1", port: int = 1883):
        import paho.mqtt.client as mqtt

        self.engine, self.clock = engine, clock
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.host, self.port = host, port
        self.handled = 0
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: self.subscribed.set()

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, _rc: Any,
                    _props: Any = None) -> None:
        client.subscribe(f"{TOPIC_PREFIX}/+/+", qos=1)

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        from gridmap.db.engine import session_scope

        try:
            device_id, kind = parse_topic(message.topic)
            payload = json.loads(message.payload or b"{}")
            if not isinstance(payload, dict):
                raise InvalidInputError("payload must be a JSON object")
            with session_scope(self.engine) as session:
                handle_reading(session, device_id, kind, payload, self.clock.now())
            self.handled += 1
        except (GridmapError, ValueError) as exc:
            log.warning("sensor message on %s rejected: %s", message.topic, exc)

    def start(self) -> None:
        """Connect and handle messages on a background thread."""
        self.client.connect(self.host, self.port)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the thread."""
        self.client.disconnect()
        self.client.loop_stop()
