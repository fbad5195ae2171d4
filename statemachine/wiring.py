"""The default wiring: the SQLite ledger and the blinker bus, in exactly one place.

Imports happen at call time, so ``statemachine`` never imports SQLite or
blinker when it is imported itself.
"""

from __future__ import annotations

import os
from typing import Any

from .handlers import global_handlers  # the core's own registry: no lazy import needed

__all__ = ["default_ledger", "default_bus", "global_handlers"]

_default_ledger: Any = None
_opened_by: tuple[str, int] | None = None


def default_ledger() -> Any:
    """The ledger at ``STATELEDGER_DB`` (else ``~/.stateledger/ledger.db``).

    Opened once per path and per process: a forked child opens its own
    connection instead of sharing its parent's.
    """
    global _default_ledger, _opened_by
    from eventstore import EventStore
    from eventstore.store import default_path

    wanted = (str(default_path()), os.getpid())
    if _default_ledger is None or _opened_by != wanted:
        _default_ledger, _opened_by = EventStore(wanted[0]), wanted
    return _default_ledger


def default_bus() -> Any:
    """The process's blinker bus."""
    from subscribers.bus import BUS

    return BUS

