"""Listeners: the blinker bus, ``subscribe()``, global state handlers, callbacks,
and durable subscriptions that read the ledger.

``subscribers.notifiers`` (imported as such) holds the notifiers.
"""

from __future__ import annotations

from statemachine.handlers import add_state_handler, callback_factory

from .durable import DurableSubscription, SubscriptionBusyError, SubscriptionConflictError
from .subscribe import subscribe

__all__ = [
    "callback_factory", "subscribe", "add_state_handler", "DurableSubscription", "SubscriptionConflictError",
    "SubscriptionBusyError",
]
