"""Open311 GeoReport v2: responses checked against schemas written from the spec."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import jsonschema
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gridmap.events.clock import FixedClock
from tests.conftest import make_key
from tests.events.conftest import MONDAY_10

# Written from the GeoReport v2 specification (open311.org/GeoReport_v2).
W3 = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d:\d\d|Z)$"}
SERVICES = {"type": "array", "items": {
    "type": "object",
    "required": ["service_code", "service_name", "description", "metadata", "type",
                 "keywords", "group"],
    "properties": {"service_code": {"type": "string"}, "service_name": {"type": "string"},
                   "metadata": {"type": "boolean"},
                   "type": {"enum": ["realtime", "batch", "blackbox"]}},
}}
DEFINITION = {"type": "object", "required": ["service_code", "attributes"], "properties": {
    "attributes": {"type": "array", "items": {"type": "object", "required": [
        "variable", "code", "datatype", "required", "datatype_description", "order",
        "description"], "properties": {"datatype": {"enum": [
            "string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]}}}}}}
REQUESTS = {"type": "array", "items": {
    "type": "object",
    "required": ["service_request_id", "status", "service_code", "requested_datetime",
                 "lat", "long"],
    "properties": {"service_request_id": {"type": "string"},
                   "status": {"enum": ["open", "closed"]}, "requested_datetime": W3,
                   "updated_datetime": W3, "lat": {"type": "number"},
                   "long": {"type": "number"}},
}}
CREATED = {"type": "array", "minItems": 1, "items": {"type": "object", "anyOf": [
    {"required": ["service_request_id"]}, {"required": ["token"]}]}}
ERRORS = {"type": "array", "minItems": 1, "items": {"type": "object",
          "required": ["code", "description"]}}
REQUEST_TAGS = {"service_request_id", "status", "service_code", "service_name",
                "description", "requested_datetime", "updated_datetime", "lat", "long"}


@pytest.fixture(scope="module")
def api(events_engine: Engine) -> Iterator[TestClient]:
    from api.main import create_app

    app = create_app(events_engine, FixedClock(MONDAY_10), background=False)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {make_key(events_engine, 'admin')}"
        yield client


@pytest.fixture(scope="module")
def created_id(api: TestClient, grid_points) -> str:
    _, lon, lat = grid_points[12]
    resp = api.post("/open311/v2/requests.json", data={
        "service_code": "urban.street_order.vending", "lat": lat, "long": lon,
        "description": "占道", "email": "li@example.org", "phone": "13700001111",
        "first_name": "四", "last_name": "李"})
    assert resp.status_code == 200, resp.text
    jsonschema.validate(resp.json(), CREATED)
    return str(resp.json()[0]["service_request_id"])


def test_services_json_and_xml(api: TestClient) -> None:
    body = api.get("/open311/v2/services.json").json()
    jsonschema.validate(body, SERVICES)
    assert "urban.appearance.exposed_garbage" in {s["service_code"] for s in body}
    resp = api.get("/open311/v2/services.xml")
    assert resp.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(resp.content)
    assert root.tag == "services" and len(root) == len(body)
    assert {c.tag for c in root[0]} >= {"service_code", "service_name", "metadata", "type"}


def test_service_definition(api: TestClient) -> None:
    body = api.get("/open311/v2/services/component.manhole_damaged.json").json()
    jsonschema.validate(body, DEFINITION)
    assert body["attributes"][0]["code"] == "facility_code"
    root = ET.fromstring(api.get("/open311/v2/services/component.manhole_damaged.xml").content)
    assert root.tag == "service_definition"
    assert root.find("attributes/attribute/code").text == "facility_code"


def test_post_then_get_request(api: TestClient, created_id: str) -> None:
    body = api.get(f"/open311/v2/requests/{created_id}.json").json()
    jsonschema.validate(body, REQUESTS)
    assert body[0]["status"] == "open" and body[0]["service_code"] == "urban.street_order.vending"
    assert "13700001111" not in str(body) and "li@example.org" not in str(body)
    root = ET.fromstring(api.get(f"/open311/v2/requests/{created_id}.xml").content)
    assert root.tag == "service_requests" and root[0].tag == "request"
    assert {c.tag for c in root[0]} >= REQUEST_TAGS


def test_post_request_xml_answer(api: TestClient, grid_points) -> None:
    _, lon, lat = grid_points[13]
    resp = api.post("/open311/v2/requests.xml", data={
        "service_code": "social.neighbour_dispute", "lat": lat, "long": lon})
    root = ET.fromstring(resp.content)
    assert root.tag == "service_requests"
    assert root.find("request/service_request_id").text.isdigit()


def test_get_requests_filters(api: TestClient, created_id: str) -> None:
    found = api.get("/open311/v2/requests.json",
                    params={"service_code": "urban.street_order.vending", "status": "open"}).json()
    jsonschema.validate(found, REQUESTS)
    assert created_id in [r["service_request_id"] for r in found]
    closed = api.get("/open311/v2/requests.json", params={"status": "closed"}).json()
    assert created_id not in [r["service_request_id"] for r in closed]
    by_id = api.get("/open311/v2/requests.json", params={"service_request_id": created_id})
    assert [r["service_request_id"] for r in by_id.json()] == [created_id]
    later = api.get("/open311/v2/requests.json",
                    params={"start_date": "2030-01-01T00:00:00Z"}).json()
    assert later == []


def test_token_lookup(api: TestClient, created_id: str, events_db: str) -> None:
    import psycopg

    with psycopg.connect(events_db) as conn:
        token = conn.execute("SELECT token FROM events WHERE id = %s",
                             (int(created_id),)).fetchone()[0]
    body = api.get(f"/open311/v2/tokens/{token}.json").json()
    assert body == [{"service_request_id": created_id, "token": token}]


@pytest.mark.parametrize(
    ("method", "path", "data", "status"),
    [
        ("post", "/open311/v2/requests.json", {"service_code": "nope", "lat": 1, "long": 1}, 400),
        ("post", "/open311/v2/requests.json",
         {"service_code": "urban.street_order.vending", "lat": "x", "long": 1}, 400),
        ("post", "/open311/v2/requests.json",
         {"service_code": "urban.street_order.vending", "lat": 91, "long": 1}, 400),
        ("get", "/open311/v2/services/nope.json", None, 404),
        ("get", "/open311/v2/requests/999999.json", None, 404),
        ("get", "/open311/v2/tokens/nope.json", None, 404),
    ],
)
def test_errors_in_georeport_format(api: TestClient, method: str, path: str, data, status) -> None:
    resp = api.post(path, data=data) if method == "post" else api.get(path)
    assert resp.status_code == status, resp.text
    jsonschema.validate(resp.json(), ERRORS)
    xml = api.post(path.replace(".json", ".xml"), data=data) if method == "post" \
        else api.get(path.replace(".json", ".xml"))
    root = ET.fromstring(xml.content)
    assert root.tag == "errors" and root.find("error/code").text == str(status)
