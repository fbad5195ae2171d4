"""The stored form of an event: its row layout, the hash chain, queries and run records.

Shared by both recorders (``recorder.SQLiteRecorder``, ``memory.MemoryRecorder``).
A *row* is the event as stored text, in ``CONTENT`` order (everything but
``seq``, ``prev_hash`` and ``hash``); ``hash = sha256(prev_hash + canonical
JSON of the row)`` chains each run's events.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import json.encoder
from dataclasses import dataclass
from typing import Any, Sequence

from .codec import to_json
from .errors import LedgerError

__all__ = [
    "SCHEMA_VERSION", "APPLICATION_ID", "CONTENT", "COLUMNS", "FINISHED_TYPES", "Query", "RunRecord",
    "chain_hash", "check_continues",
]

SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a ledger file ("STLG"): tells a ledger from other SQLite files.
APPLICATION_ID = 0x53544C47

#: The hashed content of an event, in row order.
CONTENT = (
    "event_id", "run_id", "timestamp", "kind", "name", "key", "flow", "attempt", "state",
    "old_state", "new_state", "proposed_state", "rewritten_by", "actor",
)
#: A stored row: seq, the content, prev_hash, hash.
COLUMNS = ("seq", *CONTENT, "prev_hash", "hash")
_RUN, _TS, _KIND, _FLOW, _STATE = 1, 2, 3, 6, 8  # positions in a content row
_I_RUN, _I_TS, _I_KIND, _I_NAME, _I_KEY, _I_STATE, _I_REWRITTEN = 2, 3, 4, 5, 6, 9, 13  # in a stored row

#: ``state`` names that end a flow run (its ``ended`` time is set).
FINISHED_TYPES = frozenset(
    {"Finished", "Looped", "Success", "Cached", "Mapped", "Skipped", "Failed", "TriggerFailed", "TimedOut",
     "ValidationFailed", "Crashed", "Cancelled"}
)

_sha256 = hashlib.sha256


def _no_default(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# The C encoder made once (``to_json`` makes one per call): rows are flat tuples of
# str/int/None, so no circular-reference check is needed. Same output as ``to_json``.
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
if _c_encoder is not None:
    _encode_row = _c_encoder(None, _no_default, json.encoder.encode_basestring, None, ":", ",", False, False, True)

    def _row_json(row: Sequence[Any]) -> str:
        return "".join(_encode_row(row, 0))
else:  # pragma: no cover - Pythons without the C accelerator
    _row_json = to_json


def chain_hash(prev_hash: str | None, row: Sequence[Any]) -> str:
    """The hash of a content row (as canonical JSON) chained to the run's previous hash."""
    return _sha256(((prev_hash or "") + _row_json(row)).encode()).hexdigest()


@dataclass(slots=True)
class Query:
    """Which rows to read; every field ``None`` means "no condition"."""

    run_id: str | None = None
    kind: str | None = None
    key: str | None = None
    name: str | None = None
    types: frozenset[str] | None = None  # stored ``state`` names
    since: str | None = None  # ISO UTC, inclusive
    until: str | None = None  # ISO UTC, inclusive
    rewritten: bool | None = None
    after_seq: int | None = None  # exclusive
    until_seq: int | None = None  # inclusive
    limit: int | None = None


@dataclass(slots=True, frozen=True)
class RunRecord:
    """One run as the ``runs`` table keeps it: the flow's latest state, times and event count."""

    run_id: str
    flow: str
    state: str  # the flow's latest state type, e.g. "Running", "Failed"
    started: datetime.datetime
    ended: datetime.datetime | None
    events: int

    @property
    def finished(self) -> bool:
        return self.ended is not None


def _run_record(r: Sequence[Any]) -> RunRecord:
    return RunRecord(
        r[0], r[1], r[2], datetime.datetime.fromisoformat(r[3]),
        datetime.datetime.fromisoformat(r[4]) if r[4] else None, r[5],
    )


def check_continues(path: str, row: Sequence[Any], last: str | None, prev_hash: str | None) -> None:
    if (last or None) != (prev_hash or None):
        raise LedgerError(
            f"Cannot import event {row[0]} of run {row[_RUN]} into ledger {path}: it follows hash "
            f"{prev_hash or '(none: the run starts here)'} but the ledger's run ends with "
            f"{last or '(nothing: the run is not in this ledger)'}. Import a run once, whole, into a "
            "ledger that does not hold it yet.", path)
