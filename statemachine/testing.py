"""Helpers for users' own tests: record the events a block of code commits."""

from __future__ import annotations

from .events import Event

__all__ = ["ListLedger"]


class ListLedger:
    """A ledger that keeps committed events in a list (``.events``); nothing is written."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def append(self, event: Event) -> Event:
        event.seq = len(self.events) + 1
        self.events.append(event)
        return event
