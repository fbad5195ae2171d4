"""Listeners: the blinker bus, ``subscribe()``, global state handlers, callbacks,
and durable subscriptions that read the ledger.

``subscribers.notifiers`` (imported as such) holds the notifiers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statemachine.handlers import add_state_handler, callback_factory

from .subscribe import subscribe

if TYPE_CHECKING:
    from .durable import DurableSubscription, SubscriptionBusyError, SubscriptionConflictError

__all__ = [
    "callback_factory", "subscribe", "add_state_handler", "DurableSubscription", "SubscriptionConflictError",
    "SubscriptionBusyError",
]

_DURABLE = frozenset({"DurableSubscription", "SubscriptionConflictError", "SubscriptionBusyError"})


def __getattr__(name: str) -> Any:
    """Durable subscriptions load on first use: a flow run's bus does not need them."""
    if name in _DURABLE:
        from . import durable

        return getattr(durable, name)
    raise AttributeError(f"module 'subscribers' has no attribute {name!r}")
