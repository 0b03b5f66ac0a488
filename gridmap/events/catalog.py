"""Seed data for events: the classification tree, the working calendar, sensor rules.

These are seeds for the migration; at run time the tables are the truth (edit the rows
to change routing, deadlines or rules — no code change needed).
"""

from __future__ import annotations

from typing import NamedTuple


class EventCategorySeed(NamedTuple):
    code: str
    parent_code: str | None
    name: str
    name_en: str
    kind: str
    leaf: bool = True
    affair_class: str = "official"
    department_code: str | None = None
    facility_major: str | None = None
    priority: str = "normal"
    deadline_hours: float = 16
    round_the_clock: bool = False
    auto_accept: bool = False
    duplicate_radius_m: float = 0
    duplicate_window_hours: float = 0


def _group(code: str, parent: str | None, name: str, name_en: str, kind: str) -> EventCategorySeed:
    return EventCategorySeed(code, parent, name, name_en, kind, leaf=False)


C = EventCategorySeed
EVENT_CATEGORIES: list[EventCategorySeed] = [
    _group("urban", None, "城市管理事件", "urban-management events", "urban"),
    _group("urban.appearance", "urban", "市容环境", "city appearance", "urban"),
    C("urban.appearance.exposed_garbage", "urban.appearance", "暴露垃圾", "exposed garbage",
      "urban", department_code="sanitation", deadline_hours=8,
      duplicate_radius_m=50, duplicate_window_hours=24),
    C("urban.appearance.illegal_construction", "urban.appearance", "违法建设",
      "illegal construction", "urban", department_code="city_management", deadline_hours=40,
      duplicate_radius_m=30, duplicate_window_hours=72),
    _group("urban.advertising", "urban", "宣传广告", "advertising", "urban"),
    C("urban.advertising.illegal_ad", "urban.advertising", "违规广告", "illegal advertising",
      "urban", department_code="city_management", deadline_hours=16,
      duplicate_radius_m=30, duplicate_window_hours=24),
    _group("urban.construction", "urban", "施工管理", "construction management", "urban"),
    C("urban.construction.debris", "urban.construction", "施工渣土", "construction debris",
      "urban", department_code="housing", deadline_hours=16,
      duplicate_radius_m=50, duplicate_window_hours=24),
    C("urban.construction.noise", "urban.construction", "施工噪声", "construction noise",
      "urban", department_code="ecology", deadline_hours=8),
    _group("urban.emergency", "urban", "突发事件", "emergencies", "urban"),
    C("urban.emergency.road_collapse", "urban.emergency", "道路塌陷", "road collapse", "urban",
      department_code="transport", priority="urgent", deadline_hours=2, round_the_clock=True,
      auto_accept=True, duplicate_radius_m=100, duplicate_window_hours=12),
    C("urban.emergency.burst_water_pipe", "urban.emergency", "爆管", "burst water pipe",
      "urban", department_code="water", priority="urgent", deadline_hours=2,
      round_the_clock=True, auto_accept=True, duplicate_radius_m=100,
      duplicate_window_hours=12),
    C("urban.emergency.fire", "urban.emergency", "火情", "fire", "urban",
      department_code="fire", priority="urgent", deadline_hours=1, round_the_clock=True,
      auto_accept=True, duplicate_radius_m=100, duplicate_window_hours=6),
    _group("urban.street_order", "urban", "街面秩序", "street order", "urban"),
    C("urban.street_order.vending", "urban.street_order", "占道经营", "street vending",
      "urban", department_code="city_management", deadline_hours=4,
      duplicate_radius_m=50, duplicate_window_hours=8),
    C("urban.street_order.illegal_parking", "urban.street_order", "违章停车",
      "illegal parking", "urban", department_code="traffic_police", deadline_hours=4),
    _group("component", None, "部件事件", "component events", "component"),
    C("component.manhole_damaged", "component", "井盖破损", "damaged manhole cover",
      "component", department_code="city_management", facility_major="01", priority="high",
      deadline_hours=4, duplicate_radius_m=20, duplicate_window_hours=48),
    C("component.manhole_missing", "component", "井盖缺失", "missing manhole cover",
      "component", department_code="city_management", facility_major="01", priority="urgent",
      deadline_hours=2, round_the_clock=True, auto_accept=True,
      duplicate_radius_m=20, duplicate_window_hours=48),
    C("component.street_lamp", "component", "路灯故障", "broken street lamp", "component",
      department_code="city_management", facility_major="02", deadline_hours=16,
      duplicate_radius_m=20, duplicate_window_hours=72),
    C("component.trash_bin", "component", "垃圾箱破损", "damaged trash bin", "component",
      department_code="sanitation", facility_major="03", deadline_hours=16,
      duplicate_radius_m=20, duplicate_window_hours=72),
    C("component.hydrant", "component", "消防栓损坏", "damaged fire hydrant", "component",
      department_code="fire", facility_major="01", priority="high", deadline_hours=8,
      duplicate_radius_m=20, duplicate_window_hours=72),
    _group("social", None, "社会治理事件", "social-governance events", "social"),
    C("social.elderly_care", "social", "独居老人关怀", "elderly care", "social",
      affair_class="family", priority="high", deadline_hours=4, round_the_clock=True,
      auto_accept=True),
    C("social.care_check", "social", "上门探访", "care check", "social",
      affair_class="family", priority="high", deadline_hours=8, auto_accept=True),
    C("social.neighbour_dispute", "social", "邻里纠纷", "neighbour dispute", "social",
      affair_class="collaborative", deadline_hours=24),
    C("social.parking", "social", "小区停车", "residential parking", "social",
      affair_class="collaborative", deadline_hours=40),
    C("social.safety_hazard", "social", "安全隐患", "safety hazard", "social",
      department_code="emergency", priority="high", deadline_hours=8,
      duplicate_radius_m=50, duplicate_window_hours=24),
]

# Mon–Fri 9–12 and 14–18 (weekday 0 = Monday).
WORK_PERIODS: list[tuple[int, str, str]] = [
    (day, start, end) for day in range(5) for start, end in (("09:00", "12:00"), ("14:00", "18:00"))
]


class SensorRuleSeed(NamedTuple):
    name: str
    kind: str
    trigger: str
    category_code: str
    field: str | None = None
    match: str | None = None
    silence_hours: float | None = None
    care_tag: str | None = None
    priority: str | None = None
    description: str = ""


SENSOR_RULES: list[SensorRuleSeed] = [
    SensorRuleSeed(
        "door silent 24h, elderly living alone", "door", "silence", "social.elderly_care",
        silence_hours=24, care_tag="elderly_living_alone",
        description="门磁24小时未开启（独居老人）: door sensor has not opened for 24 hours",
    ),
    SensorRuleSeed(
        "smoke alarm", "smoke", "value", "urban.emergency.fire", field="alarm", match="true",
        priority="urgent", description="烟感报警: smoke alarm",
    ),
    SensorRuleSeed(
        "no water use 12h", "water", "silence", "social.care_check", silence_hours=12,
        description="12小时无用水: no water use for 12 hours",
    ),
]
