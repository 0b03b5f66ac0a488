"""Sensor devices and their HTTP reading webhook (MQTT readings take the same path)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from api.dependencies import SessionDep
from api.event_deps import ClockDep
from api.event_schemas import DeviceIn, DeviceOut, ReadingOut
from api.schemas import ErrorOut
from gridmap.events import sensors

router = APIRouter(prefix="/api/v1", tags=["sensors"])
ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}, 422: {"model": ErrorOut}}


@router.post("/devices", operation_id="register_device", response_model=DeviceOut,
             status_code=201, responses=ERRORS)
def register_device(body: DeviceIn, session: SessionDep, clock: ClockDep) -> Any:
    """Register a sensor to a household or a facility."""
    device = sensors.register_device(session, body.device_id, body.kind,
                                     household_id=body.household_id,
                                     facility_code=body.facility_code, now=clock.now())
    return {c: getattr(device, c) for c in DeviceOut.model_fields}


@router.post("/sensors/{device_id}/{kind}", operation_id="post_sensor_reading",
             response_model=ReadingOut, responses=ERRORS)
def post_reading(
    device_id: Annotated[str, Path(max_length=64)],
    kind: Annotated[str, Path(max_length=32)],
    session: SessionDep,
    clock: ClockDep,
    payload: Annotated[dict[str, Any], Body()],
) -> Any:
    """A reading over HTTP (same rules as MQTT topic gridmap/sensors/{device_id}/{kind})."""
    opened = sensors.handle_reading(session, device_id, kind, payload, clock.now())
    return {"device_id": device_id, "kind": kind, "events": opened}
