"""Input checks: case data, typed text and case ids, refused with a message naming the field where they enter."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from caseflow.chain import _canonical
from caseflow.errors import CaseNotFoundError, CommandError
from caseflow.store import MAX_CASE_ID

__all__ = ["MAX_DATA_BYTES", "MAX_ID_CHARS", "MAX_TEXT_CHARS", "checked_case_id", "checked_data", "checked_text"]

#: Case data is a form's worth of fields, not a document store: caps keep one request from filling the
#: database (a 20 MB field was once accepted) and keep every value storable.
MAX_DATA_BYTES = 64 * 1024
MAX_TEXT_CHARS = 10_000
MAX_ID_CHARS = 64
_INT_RANGE = 2**63


def _bad_text(text: str) -> str | None:
    try:
        text.encode("utf-8")  # fails exactly on a code point U+D800..U+DFFF (a surrogate), in C
    except UnicodeEncodeError:
        return "holds a lone surrogate (text that is not valid Unicode)"
    if "\x00" in text:
        return "holds a NUL character"
    return None


def _check_value(value: Any, where: str) -> None:
    if isinstance(value, str):
        problem = _bad_text(value)
        if problem is None and len(value) > MAX_TEXT_CHARS:
            problem = f"is {len(value)} characters long; a field holds at most {MAX_TEXT_CHARS}"
        if problem:
            raise CommandError(f"case data field {where} {problem}")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -_INT_RANGE < value < _INT_RANGE:
            raise CommandError(f"case data field {where} = {value} is beyond a 64-bit whole number")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CommandError(f"case data field {where} must be a finite number (NaN and Infinity are not JSON)")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_value(item, f"{where}.{_checked_key(key)}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
    else:
        raise CommandError(f"case data field {where} is a {type(value).__name__}; give text, numbers, true/false, "
                           "lists or mappings")


def _checked_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > 100 or _bad_text(key) or any(
            ord(c) < 32 for c in key):
        raise CommandError(f"case data field name {str(key)[:120]!r} must be 1–100 characters of printable text")
    return key


def checked_data(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Case data as given to a command, checked: printable field names, valid text, finite numbers, and at
    most :data:`MAX_DATA_BYTES` in all (:data:`MAX_TEXT_CHARS` a field). Refused naming the field."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise CommandError(f"case data must be a mapping of fields, got {type(data).__name__}")
    result = {}
    for key, value in data.items():
        _check_value(value, repr(_checked_key(key)))
        result[key] = value
    size = len(_canonical(result).encode("utf-8"))
    if size > MAX_DATA_BYTES:
        raise CommandError(f"case data takes {size} bytes; a command carries at most {MAX_DATA_BYTES} "
                           "(attach documents elsewhere and record their reference)")
    return result


def checked_text(value: str | None, what: str, *, max_chars: int = MAX_TEXT_CHARS, required: bool = False) -> str:
    """A reason, a name or an id typed by a person: valid text, within ``max_chars``; refused naming ``what``."""
    text = "" if value is None else value
    if not isinstance(text, str):
        raise CommandError(f"{what} must be text, got {type(text).__name__}")
    problem = _bad_text(text)
    if problem is None and len(text) > max_chars:
        problem = f"is {len(text)} characters long; at most {max_chars}"
    if problem is None and required and not text.strip():
        problem = "is empty"
    if problem:
        raise CommandError(f"{what} {problem}")
    return text


def checked_case_id(case_id: int) -> int:
    """A case id as given: a whole number from 1 to :data:`~caseflow.store.MAX_CASE_ID` (else no case has it)."""
    if isinstance(case_id, bool) or not isinstance(case_id, int) or not 0 < case_id <= MAX_CASE_ID:
        raise CaseNotFoundError(f"no case has the id {case_id!r}; case ids are whole numbers from 1 to {MAX_CASE_ID}")
    return case_id
