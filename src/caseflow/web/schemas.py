"""Request and response bodies of ``/api/v1`` (pydantic models), and the bounded types they use."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Header
from fastapi import Path as PathParam
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StringConstraints
from starlette.convertors import Convertor, register_url_convertor

from caseflow.clock import check_date

MAX_INT4 = 2_147_483_647  # case ids are INTEGER on PostgreSQL: larger ids cannot exist, refuse them up front


# ------------------------------------------------------------------------------------------ models

# Identifiers and short texts end up in VARCHAR columns: bound their length to the column's and refuse
# control characters (PostgreSQL rejects NUL in text), so bad input is a 422, never a database error.
_SAFE = r"^[^\x00-\x1f\x7f]+$"
Ident = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_SAFE)]
PersonId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_SAFE)]
ShortText = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^[^\x00]*$")]


def _finite(value: Any) -> Any:
    """Refuse NaN and infinities anywhere in a data mapping: they are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (NaN and Infinity are not JSON)")
    if isinstance(value, Mapping):
        for item in value.values():
            _finite(item)
    elif isinstance(value, list):
        for item in value:
            _finite(item)
    return value


def _text_only(value: Any) -> Any:
    """Dates and instants come as ISO 8601 text: refuse numbers (pydantic would read them as Unix times)."""
    if not isinstance(value, (str, date)):
        raise ValueError("write dates and instants as ISO 8601 text, e.g. 2026-10-09 or 2026-10-09T09:30:00+08:00")
    return value


CaseData = Annotated[dict[str, Any], AfterValidator(_finite)]
Instant = Annotated[datetime, BeforeValidator(_text_only)]
Day = Annotated[date, BeforeValidator(_text_only), AfterValidator(check_date)]
_AT = Field(default=None, description="When it happened (ISO 8601; no offset means Beijing time). Default: now.")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="A URI naming the kind of problem, e.g. urn:caseflow:problem:transition-error")
    title: str
    status: int
    detail: str = Field(description="The engine's message: what is wrong and what to do about it.")
    instance: str | None = None


class TimerOut(BaseModel):
    """A timer of a case (``TimerView.to_dict()``)."""

    name: str
    label: str
    status: Literal["running", "paused", "met", "breached", "cancelled", "stopped"] = Field(
        description="cancelled: 不适用 (its branch was not taken, or the case ended another way); stopped: the "
                    "same, recorded before schema revision 0004")
    due_at: datetime | None = Field(description="First overdue instant; null while an uncapped pause holds it")
    last_day: date | None
    provisional: bool = Field(description="True when the due date relies on a not yet announced holiday year")
    limit: str
    kind: str
    started_at: datetime
    warn_at: datetime | None
    original_due_at: datetime | None
    paused_since: datetime | None
    assignee: str | None = Field(default=None, description="The person who must act before the timer runs out")
    escalate_at: datetime | None = Field(default=None, description="When an overdue timer goes to the "
                                                                    "assignee's leader")
    basis: str = Field(default="", description="The article or rule behind the limit")


class CaseOut(BaseModel):
    """A case, in the CLI's JSON shape (``CaseView.to_dict()``)."""

    id: int
    workflow: str
    state: str
    state_label: str
    version: int = Field(description="Also sent as the ETag; send it back in If-Match to refuse stale writes")
    responsible: str
    unit: str
    workflow_version: str
    opened_at: datetime | None
    closed_at: datetime | None
    data: dict[str, Any]
    timers: list[TimerOut]


class EventOut(BaseModel):
    """One hash-chained event of a case's history."""

    seq: int
    kind: str
    at: datetime
    actor: str
    trigger: str | None
    from_state: str | None
    to_state: str | None
    data: dict[str, Any]
    hash: str


class QueueItemOut(BaseModel):
    """One running clock of a person's queue (``QueueItem.to_dict()``)."""

    case: int
    workflow: str
    state: str
    timer: str
    label: str
    status: str
    due_at: datetime | None
    last_day: date | None
    overdue: bool
    time_left: str = Field(description="e.g. 还剩 2 个工作日, 逾期 3 小时 5 分")
    responsible: str
    via_substitute_for: str | None


class TriggerOut(BaseModel):
    """A trigger the requesting person may fire now."""

    trigger: str
    label: str
    to: str
    requires: list[str]


class OpenCase(_In):
    """Open a case of ``workflow``; the requesting person opens it (and is responsible unless told)."""

    workflow: Ident
    at: Instant | None = _AT
    data: CaseData = Field(default_factory=dict)
    responsible: PersonId | None = Field(default=None, description="首问负责人, if not the requesting person")
    assign: PersonId | None = Field(default=None, description="The person who must act on the steps opening starts "
                                                              "(of their role); default: the engine's rule")


class FireIn(_In):
    """Fire ``trigger`` with the data fields it requires."""

    trigger: Ident
    data: CaseData = Field(default_factory=dict)
    at: Instant | None = _AT
    assign: PersonId | None = Field(default=None, description="The person who must act on the steps this starts "
                                                              "(of their role); default: the engine's rule")


class HandOverStepIn(_In):
    """Hand one running step (timer) over (转交): ``to`` becomes the person who must act on it."""

    timer: Ident
    to: PersonId
    reason: Reason
    at: Instant | None = _AT


class PauseIn(_In):
    """Stop a timer's clock for a reason its definition admits (函调, 鉴定, 补正 …)."""

    timer: Ident
    reason: Reason
    data: CaseData = Field(default_factory=dict, description="Fields the pause records (the written notice …)")
    at: Instant | None = _AT


class ResumeIn(_In):
    """Restart a paused timer."""

    timer: Ident
    at: Instant | None = _AT


class ExtendIn(_In):
    """Extend a timer within its policy; the requesting person is the approver."""

    timer: Ident
    by: Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=_SAFE)] = Field(
        description='e.g. "10 working_days", "4 days"')
    grounds: Reason
    data: CaseData = Field(default_factory=dict, description="Fields the extension records (applicant told …)")
    at: Instant | None = _AT


class HandOverIn(_In):
    """Hand the case to another person (with the 交办单 number), who becomes responsible."""

    to: PersonId
    slip: ShortText | None = None
    at: Instant | None = _AT


class ReassignIn(_In):
    """A leader gives the case to someone else."""

    to: PersonId
    reason: ShortText = ""
    at: Instant | None = _AT


class CloseIn(_In):
    """Close the case outside its workflow (withdrawn, merged …): every timer stops."""

    reason: Reason
    at: Instant | None = _AT


class PersonIn(_In):
    """A person to record (administrators only)."""

    id: PersonId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_SAFE)]
    unit: Ident
    roles: list[PersonId] = Field(default_factory=list, max_length=50)
    leader: PersonId | None = None
    substitute: PersonId | None = Field(default=None, description="AB岗: who acts while this person is absent")
    admin: StrictBool = False
    channel: Annotated[str, StringConstraints(max_length=500, pattern=_SAFE)] | None = None
    replace: StrictBool = Field(default=False, description="Update the person if they exist")


class PersonOut(BaseModel):
    """A person. ``channel`` is shown to administrators only."""

    id: str
    name: str
    unit: str
    roles: list[str]
    leader: str | None
    substitute: str | None
    admin: bool
    channel: str | None = None


class AbsenceIn(_In):
    """An absence, dates inclusive: the person's queue and alerts go to their substitute."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: Day = Field(alias="from")
    end: Day = Field(alias="to")


class AbsenceOut(BaseModel):
    """A recorded absence."""

    model_config = ConfigDict(populate_by_name=True)
    person: str
    start: date = Field(alias="from")
    end: date = Field(alias="to")


class StepOut(BaseModel):
    """One day of a deadline's explanation."""

    day: date
    kind: str
    count: int | None
    reason: str
    provisional: bool


class DeadlineOut(BaseModel):
    """When a limit runs out."""

    start: datetime
    limit: str
    limit_zh: str
    due_at: datetime = Field(description="First overdue instant (00:00 after the last day for day limits)")
    last_day: date
    provisional: bool
    official_until: date
    steps: list[StepOut] | None = None


class DayOut(BaseModel):
    """One day of the working-day calendar."""

    day: date
    workday: bool
    reason: str = Field(description="'' for an ordinary working day; 周末, a holiday's name, or 调休上班")
    official: bool


class MonthOut(BaseModel):
    """A month of the working-day calendar."""

    month: str
    official_until: date
    days: list[DayOut]


class DefinitionIn(BaseModel):
    """A data file uploaded by an administrator: a workflow definition (YAML) or a holiday notice (our YAML or
    holiday-cn's JSON), as text."""

    model_config = ConfigDict(extra="forbid")
    yaml: Annotated[str, StringConstraints(min_length=1, max_length=500_000)]


class HolidayYearOut(BaseModel):
    """One year of the calendar: where its rest and make-up days come from."""

    year: int
    source: str
    origin: str
    official: bool
    rest_days: int
    workdays: int


class HolidayUploadOut(BaseModel):
    """A stored holiday notice and the deadlines it moved."""

    year: int
    source: str
    file: str = Field(description="The name the upload was read under (it is stored in the database, not as a file)")
    format: str = Field(description="yaml or holiday-cn")
    official_until: date
    festivals: list[dict[str, Any]] = Field(description="Festival by festival (第二条), how it differs from the "
                                                        "statute's projection")
    changes: list[dict[str, Any]]


class ReloadOut(BaseModel):
    """What a calendar reload moved."""

    official_until: date
    changes: list[dict[str, Any]]


class WorkflowStateOut(BaseModel):
    """A state of a workflow."""

    name: str
    label: str
    final: bool


class WorkflowTransitionOut(BaseModel):
    """A transition of a workflow."""

    trigger: str
    label: str
    sources: list[str] = Field(alias="from")
    to: str
    roles: list[str]
    requires: list[str]


class WorkflowTimerOut(BaseModel):
    """A timer of a workflow."""

    name: str
    label: str
    limit: str
    basis: str
    kind: str
    pauses: list[str]
    extendable: bool


class WorkflowOut(BaseModel):
    """A procedure definition (latest version)."""

    key: str
    title: str
    version: str
    basis: str
    roles: dict[str, str]
    states: list[WorkflowStateOut]
    transitions: list[WorkflowTransitionOut]
    timers: list[WorkflowTimerOut]


class UnitCountOut(BaseModel):
    """Open cases of one unit by their most urgent running clock."""

    unit: str
    red: int = Field(description="Overdue: a running clock is past its due instant")
    yellow: int = Field(description="Warning: a clock's warning instant has passed, not yet due")
    green: int


class OverdueOut(BaseModel):
    """An overdue running clock."""

    case: int
    workflow: str
    workflow_title: str
    state_label: str
    timer: str
    label: str
    due_at: datetime
    late: str = Field(description="How late, in working days, days or hours: 逾期 3 个工作日")
    responsible: str
    responsible_name: str
    unit: str


class MonthRateOut(BaseModel):
    """On-time rate of the clocks finished in one month."""

    month: str
    finished: int
    on_time: int
    rate: float | None


class BoardOut(BaseModel):
    """The leader board: counts per unit, the overdue list, on-time rate by month."""

    at: datetime
    units: list[UnitCountOut]
    overdue: list[OverdueOut]
    monthly: list[MonthRateOut]


class AuditOut(BaseModel):
    """The result of checking every case's hash chain, its tables and the latest signed checkpoint."""

    ok: bool
    problems: list[dict[str, Any]]
    #: The checkpoint file compared with (``[audit]`` in the server's caseflow.toml); null when none is set.
    checkpoints: str | None = None


# ------------------------------------------------------------------------------------ path and headers


IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=100,
                                       description='The case version from the ETag, e.g. "3"')]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200,
                                       description="A retry with the same key returns the first result")]
CaseId = Annotated[int, PathParam(ge=1, le=MAX_INT4, description="The case id")]


class _MonthConvertor(Convertor[str]):
    """``YYYY-MM`` in a path (shape only; the month's range is checked by the route's pattern)."""

    regex = "[0-9]{4}-[0-9]{2}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("yyyymm", _MonthConvertor())
