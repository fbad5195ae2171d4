"""The bus: committed transitions broadcast on blinker signals.

Signals are declared once, here. Each fires after the ledger committed the
event; the sender is the Task or Flow, the payload ``event=`` the committed
``Event``. Receivers observe; only state handlers rewrite. Every receiver is
called in the order it connected and isolated: one that raises is logged and
never fails the run nor silences the others.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, Sequence

from blinker import ANY, Namespace

__all__ = ["signals", "transition", "task_transition", "flow_transition", "Bus", "BUS"]

log = logging.getLogger("stateledger")

signals = Namespace()
transition = signals.signal(
    "transition", doc="Every committed transition. Sender: the Task or Flow; kwargs: event."
)
task_transition = signals.signal(
    "task-transition", doc="A task run's committed transition. Sender: the Task; kwargs: event."
)
flow_transition = signals.signal(
    "flow-transition", doc="A flow run's committed transition. Sender: the Flow; kwargs: event."
)
_BY_KIND = {"task": task_transition, "flow": flow_transition}

_connection_order: dict[Any, int] = {}
_counter = itertools.count()


def _remember_order(signal: Any, receiver: Any = None, **_: Any) -> None:
    _connection_order.setdefault(id(receiver), next(_counter))


for _signal in (transition, task_transition, flow_transition):
    _signal.receiver_connected.connect(_remember_order, weak=False)


class Bus:
    """Publishes committed events; holds the global state handlers."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[..., Any]]] = {"task": [], "flow": []}

    def publish(self, event: Any, sender: Any = None) -> None:
        """Send ``event`` to every receiver of ``transition`` and of its kind's signal."""
        kind_signal = _BY_KIND.get(event.kind)
        if not transition.receivers and not (kind_signal is not None and kind_signal.receivers):
            return
        sender = ANY if sender is None else sender
        receivers = list(transition.receivers_for(sender))
        if kind_signal is not None and kind_signal.receivers:
            receivers += kind_signal.receivers_for(sender)
        if len(receivers) > 1:
            receivers.sort(key=lambda r: _connection_order.get(id(r), 0))
        for receiver in receivers:
            try:
                receiver(sender, event=event)
            except Exception:
                log.exception("listener %r raised on %r; ignored (listeners cannot change the run)", receiver, event)

    def global_handlers(self) -> dict[str, Sequence[Callable[..., Any]]]:
        """The global state handlers by kind (live lists, in the order added)."""
        return self._handlers


BUS = Bus()
