"""The bus: committed transitions broadcast on blinker signals.

Signals are declared once, here, in one blinker ``Namespace``:

- ``transition``: every committed transition;
- ``task_transition`` (``"task-transition"``): a task run's;
- ``flow_transition`` (``"flow-transition"``): a flow run's.

Each fires after the ledger committed the event; the sender is the Task or
Flow, the payload ``event=`` the committed ``Event``, so the blinker way works::

    @transition.connect_via(my_task)
    def seen(sender, event):
        ...

Receivers observe; only state handlers rewrite (a receiver's return value is
ignored). Where blinker's own ``send()`` differs, the bus does not use it:

- order: receivers of ``transition`` and of the event kind's signal are called
  in the order they first connected (blinker's order is a set's);
- isolation: a receiver that raises is logged (logger ``stateledger``) and the
  others still run; the run never fails because of a listener;
- speed: the engine publishes every transition, so ``publish`` reads a cached
  plan (rebuilt only when a receiver connects or goes) and returns at once
  when nobody listens.

Blinker keeps weak references by default: ``signal.connect(fn)`` with a
lambda or a closure is dropped when it is garbage collected. Pass
``weak=False`` (``subscribe()`` does) to keep it.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
import weakref
from operator import itemgetter
from typing import Any, Callable, Hashable, Sequence

from blinker import ANY, NamedSignal, Namespace

try:  # the receiver ids blinker keys its receivers by (private, hence the fallback)
    from blinker._utilities import make_id
except ImportError:  # pragma: no cover - a future blinker moved it

    def make_id(obj: Any) -> Hashable:
        if inspect.ismethod(obj):
            return id(obj.__func__), id(obj.__self__)
        if isinstance(obj, (str, int)):
            return obj
        return id(obj)

__all__ = ["signals", "transition", "task_transition", "flow_transition", "Bus", "BUS"]

log = logging.getLogger("stateledger")

_order = itertools.count(1)
_lock = threading.RLock()
_plans: dict[str, tuple[tuple[Any, ...], bool]] = {}  # kind -> (receivers in order, per-sender?)
_generation = 0


def _changed() -> None:
    """A receiver connected or went: the cached plans are stale."""
    global _generation
    with _lock:
        _generation += 1
        _plans.clear()


class _OrderedSignal(NamedSignal):
    """A blinker signal that remembers when each receiver first connected and
    tells the bus when its receivers change."""

    def __init__(self, name: str, doc: str | None = None) -> None:
        super().__init__(name, doc)
        self.order: dict[Hashable, int] = {}
        #: Some receiver was connected for one sender only: publish asks blinker per sender.
        self.per_sender = False

    def connect(self, receiver: Any, sender: Any = ANY, weak: bool = True) -> Any:
        with _lock:
            receiver_id = make_id(receiver)
            if receiver_id not in self.receivers:
                self.order[receiver_id] = next(_order)
            if sender is not ANY:
                self.per_sender = True
            try:
                return super().connect(receiver, sender, weak)
            finally:
                _changed()

    def _disconnect(self, receiver_id: Hashable, sender_id: Hashable) -> None:
        # Every disconnection passes here: disconnect(), and a weakly held
        # receiver being garbage collected.
        with _lock:
            super()._disconnect(receiver_id, sender_id)
            if receiver_id not in self.receivers:
                self.order.pop(receiver_id, None)
            if not self.receivers:
                self.per_sender = False
            _changed()

    def _clear_state(self) -> None:
        with _lock:
            super()._clear_state()
            self.order.clear()
            self.per_sender = False
            _changed()


class _Namespace(Namespace):
    def signal(self, name: str, doc: str | None = None) -> NamedSignal:
        if name not in self:
            self[name] = _OrderedSignal(name, doc)
        return self[name]


signals = _Namespace()
transition = signals.signal(
    "transition", doc="Every committed transition. Sender: the Task or Flow; kwargs: event (the committed Event)."
)
task_transition = signals.signal(
    "task-transition", doc="A task run's committed transition. Sender: the Task; kwargs: event."
)
flow_transition = signals.signal(
    "flow-transition", doc="A flow run's committed transition. Sender: the Flow; kwargs: event."
)
_BY_KIND: dict[str, Any] = {"task": task_transition, "flow": flow_transition}
_REF_TYPES = (weakref.ref, weakref.WeakMethod)


def _signals_for(kind: str) -> tuple[Any, ...]:
    by_kind = _BY_KIND.get(kind)
    return (transition,) if by_kind is None else (transition, by_kind)


def _plan(kind: str) -> tuple[tuple[Any, ...], bool]:
    """(receivers connected to any sender, in connection order; whether to ask per sender)."""
    with _lock:
        plan = _plans.get(kind)
        if plan is not None:
            return plan
        generation = _generation
        sigs = _signals_for(kind)
        if any(s.per_sender for s in sigs):
            plan = ((), True)
        else:
            ranked = [(s.order.get(rid, 0), ref) for s in sigs for rid, ref in list(s.receivers.items())]
            ranked.sort(key=itemgetter(0))
            plan = (tuple(ref for _, ref in ranked), False)
        if generation == _generation:
            _plans[kind] = plan
        return plan


def _receivers_for(kind: str, sender: Any) -> list[Any]:
    """Receivers for ``sender`` (and any sender), in connection order: the per-sender path."""
    ranked = []
    for sig in _signals_for(kind):
        if sig.receivers:
            for receiver in sig.receivers_for(sender):
                ranked.append((sig.order.get(make_id(receiver), 0), receiver))
    ranked.sort(key=itemgetter(0))
    return [r for _, r in ranked]


class Bus:
    """Publishes committed events to the signals; holds the global state handlers."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[..., Any]]] = {"task": [], "flow": []}

    def publish(self, event: Any, sender: Any = None) -> None:
        """Call every receiver of ``transition`` and of the event kind's signal, in
        connection order, each isolated from the others' exceptions."""
        receivers, per_sender = _plans.get(event.kind) or _plan(event.kind)
        if per_sender:
            receivers = _receivers_for(event.kind, sender)
        elif not receivers:
            return
        for receiver in receivers:
            if type(receiver) in _REF_TYPES:  # weakly connected: it may be gone
                receiver = receiver()
                if receiver is None:
                    continue
            try:
                receiver(sender, event=event)
            except Exception:
                log.exception(
                    "listener %r raised on %r; ignored: listeners cannot change a committed run",
                    receiver,
                    event,
                )

    def global_handlers(self) -> dict[str, Sequence[Callable[..., Any]]]:
        """The global state handlers by kind (live lists, in the order added)."""
        return self._handlers


BUS = Bus()
