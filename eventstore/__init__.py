"""The ledger: every committed transition, durably, in SQLite (or in memory).

``EventStore`` is the API; ``codec`` turns states into JSON-able data and
back; ``recorder`` is the only module that talks to SQLite (and holds the
in-memory recorder beside it); ``verify``, ``replay`` and ``export`` read it.
"""

from __future__ import annotations

from statemachine.events import Event

from .codec import CutMessage, CutResult, DescribedResult
from .errors import (
    LedgerError, LedgerLocationError, LedgerWriteError, NotALedgerError, RunNotFoundError,
    SchemaVersionError,
)
from .rows import RunRecord
from .replay import StandIn
from .store import EventStore, Problem, Report, RunView, default_path

__all__ = [
    "EventStore",
    "Event",
    "RunView",
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
]
