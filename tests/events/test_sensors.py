"""Sensor rules through the real Mosquitto broker (127.0.0.1:1883) and the HTTP webhook."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInputError, NotFoundError
from gridmap.events.clock import FixedClock
from gridmap.events.sensors import (
    MqttListener,
    check_silent_devices,
    parse_topic,
    register_device,
)
from gridmap.models import Event
from tests.conftest import make_key
from tests.events.conftest import MONDAY_10

BROKER = ("127.0.0.1", 1883)


def _household(session: Session, tagged: bool) -> int:
    cond = "" if tagged else "NOT"
    return int(session.scalar(text(
        f"SELECT h.id FROM households h WHERE {cond} EXISTS (SELECT 1 FROM persons p "
        "WHERE p.household_id = h.id AND 'elderly_living_alone' = ANY(p.care_tags)) "
        "ORDER BY h.id LIMIT 1")))


@pytest.fixture(scope="module")
def sensor_clock() -> FixedClock:
    return FixedClock(MONDAY_10)


@pytest.fixture(scope="module")
def listener(events_engine: Engine, sensor_clock: FixedClock) -> Iterator[MqttListener]:
    lst = MqttListener(events_engine, sensor_clock, *BROKER)
    lst.start()
    assert lst.subscribed.wait(10), "Mosquitto on 127.0.0.1:1883 did not confirm the subscription"
    yield lst
    lst.stop()


def _publish(topic: str, payload: dict) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(*BROKER)
    client.loop_start()
    client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def _wait(predicate, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _events_of(session: Session, device: str) -> list[Event]:
    session.expire_all()
    return list(session.scalars(select(Event).where(Event.device_id == device)))


def test_smoke_alarm_over_mqtt_opens_urgent_fire_event(
    session: Session, listener: MqttListener, sensor_clock: FixedClock
) -> None:
    device = f"smoke-{uuid.uuid4().hex[:8]}"
    register_device(session, device, "smoke", household_id=_household(session, False),
                    now=sensor_clock.now())
    session.commit()
    _publish(f"gridmap/sensors/{device}/smoke", {"alarm": False})
    _publish(f"gridmap/sensors/{device}/smoke", {"alarm": True, "ppm": 900})
    assert _wait(lambda: len(_events_of(session, device)) == 1)
    time.sleep(0.3)
    (event,) = _events_of(session, device)
    assert event.category_code == "urban.emergency.fire" and event.priority == "urgent"
    assert event.source == "sensor" and event.status == "dispatched"
    assert event.department_code == "fire" and event.grid_code is not None


def test_door_silent_24h_in_elderly_household_opens_care_order(
    session: Session, listener: MqttListener, sensor_clock: FixedClock
) -> None:
    elderly, other = f"door-{uuid.uuid4().hex[:8]}", f"door-{uuid.uuid4().hex[:8]}"
    register_device(session, elderly, "door", household_id=_household(session, True),
                    now=sensor_clock.now())
    register_device(session, other, "door", household_id=_household(session, False),
                    now=sensor_clock.now())
    session.commit()
    sensor_clock.advance(hours=1)
    before = listener.handled
    _publish(f"gridmap/sensors/{elderly}/door", {"state": "open"})
    assert _wait(lambda: listener.handled > before)
    sensor_clock.advance(hours=23, minutes=30)  # 23.5 h since the door opened
    check_silent_devices(session, sensor_clock.now())
    session.commit()
    assert _events_of(session, elderly) == [] and _events_of(session, other) == []
    sensor_clock.advance(hours=1)  # 24.5 h
    check_silent_devices(session, sensor_clock.now())
    session.commit()
    events = _events_of(session, elderly)
    assert len(events) == 1 and events[0].category_code == "social.elderly_care"
    assert events[0].affair_class == "family" and events[0].worker_code
    assert _events_of(session, other) == []  # not tagged elderly_living_alone
    check_silent_devices(session, sensor_clock.advance(hours=5))
    session.commit()
    assert len(_events_of(session, elderly)) == 1  # once per silent spell


def test_no_water_for_12h_opens_care_check(session: Session, sensor_clock: FixedClock,
                                           events_engine: Engine) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app

    meter = f"water-{uuid.uuid4().hex[:8]}"
    with TestClient(create_app(events_engine, sensor_clock, background=False)) as api:
        api.headers["Authorization"] = f"Bearer {make_key(events_engine, 'admin')}"
        resp = api.post("/api/v1/devices", json={
            "device_id": meter, "kind": "water", "household_id": _household(session, False)})
        assert resp.status_code == 201, resp.text
        ok = api.post(f"/api/v1/sensors/{meter}/water", json={"litres": 3.5})
        assert ok.status_code == 200 and ok.json()["events"] == []
        assert api.post(f"/api/v1/sensors/{meter}/smoke", json={}).status_code == 422
        assert api.post("/api/v1/sensors/nope/water", json={}).status_code == 404
    sensor_clock.advance(hours=12, minutes=1)
    opened = check_silent_devices(session, sensor_clock.now())
    session.commit()
    (event,) = _events_of(session, meter)
    assert event.id in opened and event.category_code == "social.care_check"


def test_registration_and_topic_errors(session: Session, sensor_clock: FixedClock) -> None:
    with pytest.raises(InvalidInputError):
        register_device(session, "x", "door", now=sensor_clock.now())
    with pytest.raises(NotFoundError):
        register_device(session, "x", "door", household_id=-1, now=sensor_clock.now())
    with pytest.raises(InvalidInputError):
        parse_topic("gridmap/sensors/onlyone")
    assert parse_topic("gridmap/sensors/d1/door") == ("d1", "door")
    session.rollback()
