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
ignored). The bus uses blinker's public API only (``connect``,
``disconnect``, ``receivers_for``, ``set_class``) and adds, on top of it:

- order: receivers of ``transition`` and of the event kind's signal are called
  in the order they first connected, across both signals (each signal's
  ``set_class`` is an insertion-ordered set, so blinker's own ``send()`` keeps
  connection order too);
- isolation: a receiver that raises is logged (logger ``stateledger``) and the
  others still run; the run never fails because of a listener;
- speed: the engine publishes every transition, so ``publish`` reads a cached
  plan (rebuilt only when a receiver connects or goes) and returns at once
  when nobody listens.

Blinker keeps weak references by default: ``signal.connect(fn)`` with a
lambda or a closure is dropped when it is garbage collected. Pass
``weak=False`` (``subscribe()`` does) to keep it. The bus notices a weak
receiver going through its own weak reference, as blinker's documentation of
``receiver_disconnected`` suggests.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
import weakref
from collections.abc import Hashable, Iterable, Iterator, MutableSet
from operator import itemgetter
from typing import Any

from blinker import ANY, NamedSignal, Namespace

__all__ = ["signals", "transition", "task_transition", "flow_transition", "Bus", "BUS"]

log = logging.getLogger("stateledger")

_order = itertools.count(1)
_lock = threading.RLock()
_plans: dict[str, tuple[tuple[Any, ...], bool]] = {}  # kind -> (receivers in order, per-sender?)
_generation = 0
_REF_TYPES = (weakref.ref, weakref.WeakMethod)


def _changed() -> None:
    """A receiver connected or went: the cached plans are stale."""
    global _generation
    with _lock:
        _generation += 1
        _plans.clear()


def _key(receiver: Any) -> Hashable:
    """Who a receiver is: a bound method is its function and its object."""
    if inspect.ismethod(receiver):
        return id(receiver.__func__), id(receiver.__self__)
    return id(receiver)


class _OrderedSet(MutableSet):
    """An insertion-ordered set: blinker's ``set_class`` for our signals."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._items: dict[Any, None] = dict.fromkeys(items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: Any) -> None:
        self._items[item] = None

    def discard(self, item: Any) -> None:
        self._items.pop(item, None)

    def copy(self) -> _OrderedSet:
        return _OrderedSet(self._items)

    def __repr__(self) -> str:
        return f"_OrderedSet({list(self._items)!r})"


class _OrderedSignal(NamedSignal):
    """A blinker signal that remembers when each receiver first connected and
    tells the bus when its receivers change (through public methods only)."""

    set_class = _OrderedSet  # type: ignore[assignment]

    def __init__(self, name: str, doc: str | None = None) -> None:
        super().__init__(name, doc)
        #: receiver key -> rank in the global connection order
        self.order: dict[Hashable, int] = {}
        #: receiver key -> our weak reference to a weakly connected receiver
        self.refs: dict[Hashable, Any] = {}
        #: Some receiver was connected for one sender only: publish asks blinker per sender.
        self.per_sender = False

    def connect(self, receiver: Any, sender: Any = ANY, weak: bool = True) -> Any:
        with _lock:
            key = _key(receiver)
            ref = self._watch(receiver, key) if weak else None  # raises as blinker would if it cannot
            if key not in self.order:
                self.order[key] = next(_order)
            if sender is not ANY:
                self.per_sender = True
            if ref is not None:
                self.refs[key] = ref
            try:
                return super().connect(receiver, sender, weak)
            finally:
                _changed()

    def disconnect(self, receiver: Any, sender: Any = ANY) -> None:
        with _lock:
            super().disconnect(receiver, sender)
            if sender is ANY:
                self._forget(_key(receiver))
            _changed()

    def _watch(self, receiver: Any, key: Hashable) -> Any:
        """A weak reference whose callback forgets ``receiver`` when it is collected."""
        me = weakref.ref(self)

        def gone(ref: Any) -> None:
            signal = me()
            if signal is not None and signal.refs.get(key) is ref:
                with _lock:
                    signal._forget(key)
                    _changed()

        return weakref.WeakMethod(receiver, gone) if inspect.ismethod(receiver) else weakref.ref(receiver, gone)

    def _forget(self, key: Hashable) -> None:
        self.order.pop(key, None)
        self.refs.pop(key, None)
        if not self.order:
            self.per_sender = False


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


def _signals_for(kind: str) -> tuple[_OrderedSignal, ...]:
    by_kind = _BY_KIND.get(kind)
    return (transition,) if by_kind is None else (transition, by_kind)


def _ranked(sigs: Iterable[_OrderedSignal], sender: Any) -> list[tuple[int, Any]]:
    """(rank, receiver) for every live receiver of ``sigs`` for ``sender``."""
    ranked = []
    for sig in sigs:
        if sig.receivers:
            for receiver in sig.receivers_for(sender):
                ranked.append((sig.order.get(_key(receiver), 0), receiver))
    ranked.sort(key=itemgetter(0))
    return ranked


def _plan(kind: str) -> tuple[tuple[Any, ...], bool]:
    """(receivers connected to any sender, in connection order; whether to ask per sender).

    Weakly connected receivers are kept as our weak references, so a cached
    plan never keeps a receiver alive.
    """
    with _lock:
        plan = _plans.get(kind)
        if plan is not None:
            return plan
        generation = _generation
        sigs = _signals_for(kind)
        if any(s.per_sender for s in sigs):
            plan = ((), True)
        else:
            refs = {k: r for s in sigs for k, r in s.refs.items()}
            entries = []
            for _, receiver in _ranked(sigs, ANY):
                key = _key(receiver)
                entries.append(refs.get(key, receiver))
            plan = (tuple(entries), False)
        if generation == _generation:
            _plans[kind] = plan
        return plan


class Bus:
    """Publishes committed events to the signals."""

    def publish(self, event: Any, sender: Any = None) -> None:
        """Call every receiver of ``transition`` and of the event kind's signal, in
        connection order, each isolated from the others' exceptions."""
        receivers, per_sender = _plans.get(event.kind) or _plan(event.kind)
        if per_sender:
            receivers = [r for _, r in _ranked(_signals_for(event.kind), sender)]
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


BUS = Bus()
