"""What a procedure asks of the applicant: its materials (申请材料) and its window service terms.

A workflow file may carry two blocks near its top, both published on the procedure's 公示 page
(行政许可法 第三十条: "需要提交的全部材料的目录 … 在办公场所公示"; 户籍窗口优质服务操作规范 三(四)):

.. code-block:: yaml

    service:
      type: 承诺件            # 件 type: 即办件 / 承诺件 / 上报件 / 联办件 (如皋 行政服务中心规范 三、3)
      max_visits: 2          # 户籍 四(五) "不让群众跑第三趟"; 出入境 10 "不超过三次" → 3
      conditions: [迁入地有合法固定住所]
      office_hours: 周一至周五 8:30-12:00、14:00-17:30
      promise: 材料齐全的当场受理, 2个工作日内报所领导审批
      rating_window_days: 15 # a late rating (好差评) is accepted this many days after the case ends
      booking: true          # the 公示 page links to the booking page
    materials:
      - {key: id_card, name: 居民身份证, source: 申请人本人, basis: 户口登记条例 第十条}
      - {key: marriage_cert, name: 结婚证, condition: 投靠配偶迁入的, source: 婚姻登记机关, basis: …}

A material is required unless it has a ``condition`` (then it is needed when the condition applies,
which the clerk states at the desk). :func:`materials_digest` fingerprints the list, so a later
一次告知单 can tell whether the list changed since the first one (desk.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from caseflow.errors import WorkflowError

__all__ = [
    "ITEM_TYPES",
    "Material",
    "ServiceSpec",
    "materials_digest",
    "parse_materials",
    "parse_service",
]

#: The 件 types of the administrative service centres (如皋市行政服务中心工作人员服务规范 二、3: "即办件要即时
#: 办结，现场送达；承诺件要尽可能的做到早办结…；上报件应尽快与上级审批部门联系…；联办件应按并联审批相关规定执行").
ITEM_TYPES = ("即办件", "承诺件", "上报件", "联办件")

_MATERIAL_KEYS = ("key", "name", "required", "condition", "source", "basis", "copies", "note")
_SERVICE_KEYS = ("type", "max_visits", "conditions", "office_hours", "promise", "rating_window_days",
                 "booking", "booking_hours", "slot_minutes", "per_slot", "basis")
_DEFAULT_HOURS = ("09:00-11:30", "14:30-17:00")

Fail = Callable[[str, str], NoReturn]


def _raise(message: str, fld: str) -> NoReturn:
    raise WorkflowError(message, field=fld)


@dataclass(frozen=True)
class Material:
    """One material of a procedure: required, or needed only when its ``condition`` applies."""

    key: str
    name: str
    source: str = ""
    basis: str = ""
    condition: str = ""
    copies: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.isidentifier():
            _raise(f"a material key must be an identifier (letters, digits, _), got {self.key!r}", "materials")
        if not isinstance(self.name, str) or not self.name.strip():
            _raise(f"material {self.key!r} needs a name (its Chinese label), got {self.name!r}", "materials")

    @property
    def required(self) -> bool:
        """True when the material is always needed (it has no condition)."""
        return not self.condition

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used on the 公示 page and in 告知单."""
        return {"key": self.key, "name": self.name, "required": self.required, "condition": self.condition or None,
                "source": self.source, "basis": self.basis, "copies": self.copies or None, "note": self.note or None}


@dataclass(frozen=True)
class ServiceSpec:
    """The window terms of a procedure: 件 type, visits allowed, conditions, office hours, rating window."""

    type: str = "承诺件"
    max_visits: int = 2
    conditions: tuple[str, ...] = ()
    office_hours: str = ""
    promise: str = ""
    rating_window_days: int = 15
    booking: bool = False
    #: Bookable hours on working days (appointments.py), the length of a slot and the places per slot.
    booking_hours: tuple[str, ...] = _DEFAULT_HOURS
    slot_minutes: int = 30
    per_slot: int = 2
    basis: str = ""
    declared: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.type not in ITEM_TYPES:
            _raise(f"service.type must be one of {', '.join(ITEM_TYPES)}, got {self.type!r}", "service.type")
        if isinstance(self.max_visits, bool) or not isinstance(self.max_visits, int) or self.max_visits < 1:
            _raise(f"service.max_visits must be a whole number of at least 1, got {self.max_visits!r}",
                   "service.max_visits")
        if isinstance(self.rating_window_days, bool) or not isinstance(self.rating_window_days, int) \
                or self.rating_window_days < 0:
            _raise(f"service.rating_window_days must be a whole number of days (0 or more), got "
                   f"{self.rating_window_days!r}", "service.rating_window_days")

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the 公示 page."""
        return {"type": self.type, "max_visits": self.max_visits, "conditions": list(self.conditions),
                "office_hours": self.office_hours, "promise": self.promise,
                "rating_window_days": self.rating_window_days, "booking": self.booking,
                "booking_hours": list(self.booking_hours), "slot_minutes": self.slot_minutes,
                "per_slot": self.per_slot, "basis": self.basis}


def _text(node: Mapping[str, Any], key: str, fld: str, fail: Fail, *, required: bool = False) -> str:
    value = node.get(key)
    if value is None:
        if required:
            fail(f"{key} is missing", fld)
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value).strip():
        fail(f"{key} must be a non-empty text, got {value!r}", fld)
    return str(value).strip()


def _unknown(node: Mapping[str, Any], allowed: tuple[str, ...], fld: str, what: str, fail: Fail) -> None:
    for key in node:
        if key not in allowed:
            fail(f"unknown key {key!r} in {what}; allowed keys are {', '.join(allowed)}", f"{fld}.{key}")


def parse_materials(value: Any, fail: Fail = _raise) -> tuple[Material, ...]:
    """The ``materials:`` list of a workflow file; ``fail(message, field)`` reports a problem with its place."""
    if value is None:
        return ()
    if not isinstance(value, list):
        fail(f"materials must be a list of {{key, name, source, basis}} entries, got {value!r}", "materials")
    result: list[Material] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        fld = f"materials[{i}]"
        if not isinstance(item, dict):
            fail(f"a material must be a mapping with key and name, got {item!r}", fld)
        _unknown(item, _MATERIAL_KEYS, fld, "a material", fail)
        key = item.get("key")
        if not isinstance(key, str) or not key.isidentifier():
            fail(f"a material key must be an identifier (letters, digits, _), got {key!r}", f"{fld}.key")
        if key in seen:
            fail(f"duplicate material key {key!r}", f"{fld}.key")
        seen.add(key)
        required = item.get("required", True)
        condition = _text(item, "condition", f"{fld}.condition", fail)
        if not isinstance(required, bool):
            fail(f"required must be true or false, got {required!r}", f"{fld}.required")
        if required and condition and "required" in item:
            fail(f"material {key!r} is marked required but has a condition; drop one of them", f"{fld}.required")
        if not required and not condition:
            fail(f"material {key!r} is not required: say when it is needed with condition: …", f"{fld}.condition")
        result.append(Material(key=key, name=_text(item, "name", f"{fld}.name", fail, required=True),
                               source=_text(item, "source", f"{fld}.source", fail),
                               basis=_text(item, "basis", f"{fld}.basis", fail), condition=condition,
                               copies=_text(item, "copies", f"{fld}.copies", fail),
                               note=_text(item, "note", f"{fld}.note", fail)))
    return tuple(result)


def parse_service(value: Any, fail: Fail = _raise) -> ServiceSpec:
    """The ``service:`` block of a workflow file (defaults when absent: 承诺件, two visits)."""
    if value is None:
        return ServiceSpec()
    if not isinstance(value, dict):
        fail(f"service must be a mapping (type, max_visits, conditions, office_hours …), got {value!r}", "service")
    _unknown(value, _SERVICE_KEYS, "service", "service", fail)
    kind = value.get("type", "承诺件")
    if kind not in ITEM_TYPES:
        fail(f"service.type must be one of {', '.join(ITEM_TYPES)}, got {kind!r}", "service.type")
    max_visits = value.get("max_visits", 2)
    if isinstance(max_visits, bool) or not isinstance(max_visits, int) or max_visits < 1:
        fail(f"service.max_visits must be a whole number of at least 1, got {max_visits!r}", "service.max_visits")
    window = value.get("rating_window_days", 15)
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        fail(f"service.rating_window_days must be a whole number of days, got {window!r}",
             "service.rating_window_days")
    conditions = value.get("conditions") or []
    if not isinstance(conditions, list) or not all(isinstance(c, str) and c.strip() for c in conditions):
        fail(f"service.conditions must be a list of texts, got {conditions!r}", "service.conditions")
    booking = value.get("booking", False)
    if not isinstance(booking, bool):
        fail(f"service.booking must be true or false, got {booking!r}", "service.booking")
    hours = value.get("booking_hours", list(_DEFAULT_HOURS))
    if not isinstance(hours, list) or not hours or not all(
            isinstance(h, str) and re.fullmatch(r"\d\d:\d\d-\d\d:\d\d", h.strip()) for h in hours):
        fail(f"service.booking_hours must be a list like [09:00-11:30, 14:30-17:00], got {hours!r}",
             "service.booking_hours")
    numbers = {}
    for key, default in (("slot_minutes", 30), ("per_slot", 2)):
        number = value.get(key, default)
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            fail(f"service.{key} must be a whole number of at least 1, got {number!r}", f"service.{key}")
        numbers[key] = number
    return ServiceSpec(type=kind, max_visits=max_visits, conditions=tuple(c.strip() for c in conditions),
                       office_hours=_text(value, "office_hours", "service.office_hours", fail),
                       promise=_text(value, "promise", "service.promise", fail), rating_window_days=window,
                       booking=booking, booking_hours=tuple(h.strip() for h in hours),
                       slot_minutes=numbers["slot_minutes"], per_slot=numbers["per_slot"],
                       basis=_text(value, "basis", "service.basis", fail), declared=True)


def materials_digest(materials: Iterable[Material]) -> str:
    """A fingerprint of a material list: it changes when a material is added, dropped or its condition changes."""
    canonical = json.dumps([[m.key, m.name, m.condition] for m in materials], ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
