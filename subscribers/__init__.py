"""Listeners and notifiers: the blinker bus, ``subscribe()``, global handlers, callbacks."""

from __future__ import annotations

from statemachine.callbacks import callback_factory

from .subscribe import add_state_handler, subscribe

__all__ = ["callback_factory", "subscribe", "add_state_handler"]
