"""The default wiring: the SQLite ledger and the blinker bus, in exactly one place.

Imports happen at call time, so ``statemachine`` never imports SQLite or
blinker when it is imported itself.
"""

from __future__ import annotations

from typing import Any

__all__ = ["default_ledger", "default_bus", "global_handlers"]

_default_ledger: Any = None


def default_ledger() -> Any:
    """The ledger at ``STATELEDGER_DB`` (else ``~/.stateledger/ledger.db``), opened once."""
    global _default_ledger
    from eventstore import EventStore
    from eventstore.store import default_path

    path = default_path()
    if _default_ledger is None or getattr(_default_ledger, "path", None) != path:
        _default_ledger = EventStore(path)
    return _default_ledger


def default_bus() -> Any:
    """The process's blinker bus."""
    from subscribers.bus import BUS

    return BUS


def global_handlers() -> dict[str, Any]:
    """Handlers added with ``subscribers.add_state_handler``, by kind."""
    from subscribers.bus import BUS

    return BUS.global_handlers()
