"""Seed catalogs: departments and the facility (component, 部件) classification.

Major classes follow the urban-management component standard: 01 public utilities,
02 roads and traffic, 03 city appearance and environment, 04 greenery, 05 housing and
land, 06 other.
"""

from __future__ import annotations

from typing import NamedTuple


class DepartmentSeed(NamedTuple):
    code: str
    name: str
    kind: str


class CategorySeed(NamedTuple):
    major_code: str
    minor_code: str
    name: str
    name_en: str
    owner: str
    maintainer: str


DEPARTMENTS: list[DepartmentSeed] = [
    DepartmentSeed("water", "自来水公司", "utility"),
    DepartmentSeed("drainage", "排水管理处", "government"),
    DepartmentSeed("gas", "燃气公司", "utility"),
    DepartmentSeed("power", "供电公司", "utility"),
    DepartmentSeed("telecom", "通信公司", "utility"),
    DepartmentSeed("fire", "消防救援支队", "government"),
    DepartmentSeed("transport", "交通运输局", "government"),
    DepartmentSeed("traffic_police", "公安交通管理局", "government"),
    DepartmentSeed("city_management", "城市管理局", "government"),
    DepartmentSeed("sanitation", "环境卫生管理处", "government"),
    DepartmentSeed("landscape", "园林绿化局", "government"),
    DepartmentSeed("housing", "住房和城乡建设委员会", "government"),
    DepartmentSeed("planning", "规划和自然资源局", "government"),
    DepartmentSeed("civil_affairs", "民政局", "government"),
    DepartmentSeed("emergency", "应急管理局", "government"),
    DepartmentSeed("market_regulation", "市场监督管理局", "government"),
    DepartmentSeed("ecology", "生态环境局", "government"),
]

MAJOR_CLASSES: dict[str, str] = {
    "01": "公用设施",
    "02": "道路交通",
    "03": "市容环境",
    "04": "园林绿化",
    "05": "房屋土地",
    "06": "其他设施",
}

CATEGORIES: list[CategorySeed] = [
    CategorySeed("01", "01", "上水井盖", "water manhole cover", "water", "water"),
    CategorySeed("01", "02", "污水井盖", "sewer manhole cover", "drainage", "drainage"),
    CategorySeed("01", "03", "雨水井盖", "storm drain manhole cover", "drainage", "drainage"),
    CategorySeed("01", "04", "燃气井盖", "gas manhole cover", "gas", "gas"),
    CategorySeed("01", "05", "电力井盖", "power manhole cover", "power", "power"),
    CategorySeed("01", "06", "通信井盖", "telecom manhole cover", "telecom", "telecom"),
    CategorySeed("01", "07", "消防栓", "fire hydrant", "fire", "water"),
    CategorySeed("01", "08", "雨水篦子", "storm drain grate", "drainage", "drainage"),
    CategorySeed("01", "09", "变压器", "transformer box", "power", "power"),
    CategorySeed("02", "01", "路灯", "street lamp", "city_management", "city_management"),
    CategorySeed("02", "02", "交通信号灯", "traffic light", "traffic_police", "traffic_police"),
    CategorySeed("02", "03", "交通标志牌", "traffic sign", "traffic_police", "traffic_police"),
    CategorySeed("02", "04", "公交站亭", "bus shelter", "transport", "transport"),
    CategorySeed("02", "05", "护栏", "guard rail", "transport", "city_management"),
    CategorySeed("02", "06", "停车泊位", "parking bay", "traffic_police", "city_management"),
    CategorySeed("03", "01", "垃圾箱", "trash bin", "sanitation", "sanitation"),
    CategorySeed("03", "02", "公共厕所", "public toilet", "sanitation", "sanitation"),
    CategorySeed("03", "03", "垃圾收集站", "waste collection point", "sanitation", "sanitation"),
    CategorySeed("03", "04", "广告牌", "billboard", "city_management", "city_management"),
    CategorySeed("04", "01", "行道树", "street tree", "landscape", "landscape"),
    CategorySeed("04", "02", "绿地", "green space", "landscape", "landscape"),
    CategorySeed("04", "03", "花坛", "flower bed", "landscape", "landscape"),
    CategorySeed("05", "01", "危房", "dangerous building", "housing", "housing"),
    CategorySeed("05", "02", "工地", "construction site", "housing", "housing"),
    CategorySeed("06", "01", "监控电子眼", "surveillance camera", "emergency", "emergency"),
    CategorySeed("06", "02", "应急避难场所", "emergency shelter", "emergency", "emergency"),
]
