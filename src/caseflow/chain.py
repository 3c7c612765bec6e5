"""The hash chain of a case's events: each event's SHA-256 covers its fields and its predecessor's hash.

Commands append to it (:mod:`caseflow.engine`); :mod:`caseflow.audit` verifies it, and
:mod:`caseflow.recompute` writes its events in bulk with the same canonical JSON and hashes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caseflow.store import EventRow

__all__ = ["GENESIS_HASH", "event_hash"]

#: The predecessor hash of a case's first event.
GENESIS_HASH = "0" * 64


def _canonical(value: Any) -> str:
    """The one JSON text of a value, as stored and hashed: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def event_hash(row: EventRow) -> str:
    """The SHA-256 of an event's fields and its predecessor's hash."""
    payload = {
        "case_id": row.case_id, "seq": row.seq, "kind": row.kind,
        "at": row.at.astimezone(UTC).isoformat(), "recorded_at": row.recorded_at.astimezone(UTC).isoformat(),
        "actor": row.actor, "trigger": row.trigger, "from_state": row.from_state, "to_state": row.to_state,
        "data": row.data, "prev_hash": row.prev_hash,
    }
    return hashlib.sha256(_canonical(payload).encode("utf-8")).hexdigest()
