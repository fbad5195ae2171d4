"""The ledger: every committed transition, durably, in SQLite (or in memory).

``EventStore`` is the API. Below it, ``mapper`` turns events into rows and
back (the only module that knows the column order; ``codec`` does the states);
``protocol.Recorder`` says what a backend must do, and ``sqlite.SQLiteRecorder``
and ``memory.MemoryRecorder`` do it; ``views`` holds what reading returns;
``verify``, ``checkpoints``, ``export`` and ``replay`` are functions over a recorder, and
``orphans`` finds and reaps runs whose writer died. The
``stateledger`` command line lives in ``eventstore.cli``.
"""

from __future__ import annotations

from statemachine.events import Event

from .checkpoints import Checkpoint
from .codec import CutMessage, CutResult, DescribedResult
from .errors import (
    LedgerError, LedgerLocationError, LedgerWriteError, NotALedgerError, RunExistsError, RunNotFoundError,
    SchemaVersionError,
)
from .mapper import RunRecord
from .orphans import Orphan, Reaped
from .protocol import Recorder
from .replay import StandIn
from .store import EventStore, default_path
from .views import Problem, Report, RunView, TaskStates

__all__ = [
    "EventStore",
    "Checkpoint",
    "Event",
    "Recorder",
    "RunView",
    "TaskStates",
    "RunRecord",
    "Report",
    "Problem",
    "StandIn",
    "DescribedResult",
    "CutResult",
    "CutMessage",
    "default_path",
    "LedgerError",
    "NotALedgerError",
    "SchemaVersionError",
    "LedgerWriteError",
    "LedgerLocationError",
    "RunNotFoundError",
    "RunExistsError",
    "Orphan",
    "Reaped",
]
