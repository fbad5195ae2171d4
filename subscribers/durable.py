"""Durable subscriptions: a named listener whose cursor lives in the ledger file.

A live listener (``subscribe()``) only sees what its own process commits, and
only while it runs. A durable subscription reads the ledger instead: every
event any process committed, in ``seq`` order, resuming where it stopped::

    sub = DurableSubscription("pager", page_someone, store="ledger.db", states=[Failed])
    sub.catch_up()          # deliver what was committed since last time
    sub.follow(stop=stop)   # ... and keep delivering until stop is set

Delivery is at-least-once. The cursor (the ``seq`` of the last event handled)
is saved in the ledger only *after* the listener returned, so an event is
never lost; if the process dies after a listener returned but before the
cursor was saved, that event is delivered again on restart. Cursors are saved
at the end of each batch, when ``checkpoint_interval`` seconds passed since
the last save (so a slow listener is not repeated much), and before
``catch_up`` returns or raises.

A listener that raises stops the delivery: the cursor stays on the last event
handled, ``catch_up`` (and ``follow``) re-raise the listener's own exception
(with a note naming the subscription and the event), and the next
``catch_up`` retries from that event.

Each name has one cursor and one filter: two subscriptions with different
names on one ledger are independent; reusing a name with a different filter
raises ``SubscriptionConflictError``.

One consumer per name at a time: ``catch_up`` and ``follow`` hold a *lease*
on the name in the ledger while they deliver (renewed every third of
``lease_ttl`` seconds, released when they return, after the cursor is
saved). A second consumer of that name, in this process or another, is
refused with ``SubscriptionBusyError`` naming the holder, instead of both
delivering the same events. If the holder dies, its lease expires after
``lease_ttl`` seconds without renewal and the next consumer takes over from
the saved cursor; a holder on this host whose process is gone is taken over
at once. A consumer that could not renew for ``lease_ttl`` seconds (a
listener call that long, a stopped process) may have been replaced: it stops
with ``SubscriptionBusyError`` before delivering anything more, and leaves
the cursor to its successor.

A subscription object is not thread-safe; use one per thread.

Runs whose writer died (a SIGKILL, a power loss) would otherwise never tell
anyone: so, by default (``reap=True``), ``catch_up`` and the ``follow`` loop
also reap the ledger every ``reap_interval`` seconds (``EventStore.reap``
with ``lease=orphan_lease``): an orphan's open tasks and flow are committed ``Crashed``
and reach the listener like any other event, so a notifier used as a durable
listener reports a killed run within one lease (at once for a writer on
this host). ``reap=False`` opts out. Only the consumer holding the
subscription's lease reaps.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from typing import Any, Callable

from statemachine.callbacks import check_handler
from statemachine.errors import ArgumentError, StateLedgerError
from statemachine.events import current_actor, current_host
from statemachine.filters import EventFilter

__all__ = ["DurableSubscription", "SubscriptionConflictError", "SubscriptionStoreError", "SubscriptionBusyError"]

log = logging.getLogger("stateledger")

log = logging.getLogger("stateledger")

Listener = Callable[[Any], Any]
_NEEDS = ("load_cursor", "save_cursor", "events")


class SubscriptionConflictError(StateLedgerError, ValueError):
    """A durable subscription name is already used in this ledger with another filter."""

    def __init__(self, message: str, name: str, stored: Any, given: Any, path: Any = None) -> None:
        super().__init__(message)
        self.name, self.stored, self.given, self.path = name, stored, given, path


class SubscriptionStoreError(StateLedgerError, TypeError):
    """The ``store=`` given cannot keep a durable cursor."""


class SubscriptionBusyError(StateLedgerError):
    """Another consumer holds the subscription's name (``holder``: ``user@host:pid``).

    Raised when ``catch_up``/``follow`` start while another consumer delivers
    (``lost`` False; ``expires_in``: seconds until its lease runs out unless
    renewed), or when this consumer's lease ran out and another took it
    (``lost`` True).
    """

    def __init__(self, message: str, name: str, holder: str, expires_in: float | None = None,
                 lost: bool = False, path: Any = None) -> None:
        super().__init__(message)
        self.name, self.holder, self.expires_in, self.lost, self.path = name, holder, expires_in, lost, path


class DurableSubscription:
    """A named, durable ``listener(event)`` over a ledger, with the same filters as ``subscribe()``.

    ``store``: an ``eventstore.EventStore``, or a path to a ledger file
    (opened here and closed by ``close()``); default: the default ledger
    (``STATELEDGER_DB``). A new name starts before the first event of the
    ledger, or with ``start="end"`` after its last one (only what is committed
    from now on); a known name resumes at its cursor. ``batch_size`` events
    are read per query; the cursor is saved at least every
    ``checkpoint_interval`` seconds of delivery. ``lease_ttl``: seconds
    after which a consumer that stopped renewing its lease (it died) can be
    replaced (see the module docstring).
    """

    def __init__(
        self,
        name: str,
        listener: Listener,
        *,
        store: Any = None,
        flow: Any = None,
        task: Any = None,
        states: Any = None,
        kinds: Any = None,
        start: str = "beginning",
        batch_size: int = 1000,
        checkpoint_interval: float = 0.5,
        lease_ttl: float = 30.0,
        reap: bool = True,
        orphan_lease: float = 60.0,
        reap_interval: float = 5.0,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ArgumentError(f"a durable subscription needs a non-empty name (str), got {name!r}")
        if start not in ("beginning", "end"):
            raise ArgumentError(f'start= takes "beginning" or "end", got {start!r}')
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ArgumentError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(lease_ttl, bool) or not isinstance(lease_ttl, (int, float)) or not lease_ttl > 0:
            raise ArgumentError(f"lease_ttl must be a positive number of seconds, got {lease_ttl!r}")
        for what, value in (("orphan_lease", orphan_lease), ("reap_interval", reap_interval)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ArgumentError(f"{what} must be a number of seconds >= 0, got {value!r}", what, value)
        check_handler(listener, "listener(event)")
        self.name = name
        self.start = start
        self.listener = listener
        self.filter = EventFilter(flow=flow, task=task, states=states, kinds=kinds)
        self.batch_size = batch_size
        self.checkpoint_interval = checkpoint_interval
        self.orphan_lease, self.reap_interval = orphan_lease, reap_interval
        self._last_reap: float | None = None
        self.store, self._owns_store = _open_store(store)
        self._lease = _Lease(self.store, name, float(lease_ttl))
        try:
            _check_store_methods(self.store, _NEEDS + (("max_seq",) if start == "end" else ()))
            self._load()  # registers the name, or refuses a conflicting filter
        except BaseException:
            self.close()
            raise
        self.reap = reap and callable(getattr(self.store, "reap", None))

    # --- the cursor -----------------------------------------------------------

    @property
    def cursor(self) -> int:
        """The ``seq`` of the last event handled (0: none yet), as saved in the ledger."""
        return self._load()

    def _load(self) -> int:
        """The saved cursor; a new name is saved at 0 with this filter; another filter is refused."""
        given = self.filter.to_dict()
        found = self.store.load_cursor(self.name)
        if found is None:
            seq = 0 if self.start == "beginning" else int(self.store.max_seq())
            self.store.save_cursor(self.name, seq, given)
            return seq
        seq, stored = found
        if stored != given:
            path = getattr(self.store, "path", None)
            raise SubscriptionConflictError(
                f"Durable subscription {self.name!r} already exists in ledger {path} with filter "
                f"{_describe(stored)}; you asked for {_describe(given)}. Use another name for a "
                "different filter, or the same filter to resume.",
                self.name,
                stored,
                given,
                path,
            )
        return int(seq)

    def _note_listener_error(self, exc: BaseException, event: Any, seq: int, listener: Any) -> None:
        """Say in the exception which event the listener raised on and where the cursor stays."""
        if (event is not None and event.seq != seq and hasattr(exc, "add_note")
                and not isinstance(exc, SubscriptionBusyError)):  # the listener did not raise
            exc.add_note(
                f"(durable subscription {self.name!r}: listener {_name_of(listener)} raised on event "
                f"seq={event.seq}; the cursor stays at seq={seq} and the next catch_up() retries it)"
            )

    def _save(self, seq: int) -> None:
        self._lease.keep()  # raises if another consumer took the name meanwhile
        if not self._lease.lost:  # a consumer that lost its lease leaves the cursor to its successor
            self.store.save_cursor(self.name, seq, self.filter.to_dict())

    def _reap(self) -> None:
        """Reap orphaned runs (at most every ``reap_interval`` seconds): their Crashed events follow."""
        now = time.monotonic()
        if not self.reap or (self._last_reap is not None and now - self._last_reap < self.reap_interval):
            return
        self._last_reap = now
        try:
            for r in self.store.reap(lease=self.orphan_lease):
                log.warning("durable subscription %r reaped run %s: %s", self.name, r.run_id, r.reason)
        except Exception as exc:  # a busy ledger: the next round tries again; delivery goes on
            log.warning("durable subscription %r could not reap orphaned runs (%s)", self.name, exc)

    # --- delivery ---------------------------------------------------------------

    def catch_up(self, *, limit: int | None = None) -> int:
        """Deliver every matching event after the cursor, in ``seq`` order; return how many.

        ``limit``: deliver at most that many events. The cursor advances only
        past events whose listener returned (and past events the filter
        skips). If the listener raises, the cursor stays on the last event
        handled and the listener's exception propagates. Raises
        ``SubscriptionBusyError`` if another consumer delivers under this name.
        """
        self._lease.take()
        try:
            return self._catch_up(limit)
        finally:
            self._lease.release()

    def _catch_up(self, limit: int | None) -> int:
        self._reap()
        seq = saved = self._load()
        keep = self._lease.keep
        delivered = 0
        matches = None if self.filter.is_empty else self.filter.matches
        listener, store, batch_size = self.listener, self.store, self.batch_size
        last_save = time.monotonic()
        event = None
        try:
            while limit is None or delivered < limit:
                events = store.events(after_seq=seq, limit=batch_size)
                if not events:
                    break
                for event in events:
                    if matches is None or matches(event):
                        if limit is not None and delivered >= limit:
                            break
                        keep()
                        listener(event)
                        delivered += 1
                        seq = event.seq
                        if time.monotonic() - last_save >= self.checkpoint_interval:
                            self._save(seq)
                            saved, last_save = seq, time.monotonic()
                    else:
                        seq = event.seq
                if seq != saved:
                    self._save(seq)
                    saved, last_save = seq, time.monotonic()
                if len(events) < batch_size:
                    break
        except BaseException as exc:
            self._note_listener_error(exc, event, seq, listener)
            raise
        finally:
            if seq != saved:
                self._save(seq)
        return delivered

    def follow(
        self,
        poll_interval: float = 0.5,
        stop: threading.Event | Callable[[], bool] | None = None,
        *,
        timeout: float | None = None,
    ) -> int:
        """Keep delivering events as other processes commit them; return how many were delivered.

        Reads the ledger through ``EventStore.tail`` (which waits
        ``poll_interval`` seconds between reads) until ``stop`` (a
        ``threading.Event``, or a callable returning True) says so, or
        ``timeout`` seconds passed. A listener that raises ends ``follow``
        with its exception, the cursor on the last event handled. Raises
        ``SubscriptionBusyError`` if another consumer delivers under this name.
        """
        _check_store_methods(self.store, ("tail",))
        self._lease.take()
        try:
            return self._follow(poll_interval, stop, timeout)
        finally:
            self._lease.release()

    def _follow(self, poll_interval: float, stop: Any, timeout: float | None) -> int:
        seq = saved = self._load()
        keep = self._lease.keep
        last_save = time.monotonic()
        delivered = 0
        event = None

        def save(at: int) -> None:
            nonlocal seq, saved, last_save
            keep()
            seq = max(seq, at)
            if seq != saved:
                self._save(seq)
                saved, last_save = seq, time.monotonic()

        def idle(at: int) -> None:  # caught up: save the cursor, and reap when due
            save(at)
            self._reap()

        listener = self.listener
        try:
            for event in self.store.tail(seq, where=self.filter, poll_interval=poll_interval, stop=stop,
                                         timeout=timeout, batch_size=self.batch_size, on_idle=idle):
                keep()
                listener(event)
                delivered += 1
                seq = event.seq
                if time.monotonic() - last_save >= self.checkpoint_interval:
                    save(seq)
        except BaseException as exc:
            self._note_listener_error(exc, event, seq, listener)
            raise
        finally:
            save(seq)
        return delivered

    # --- lifetime ---------------------------------------------------------------

    def close(self) -> None:
        """Close the ledger if this subscription opened it from a path."""
        if self._owns_store:
            self._owns_store = False
            close = getattr(self.store, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> DurableSubscription:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DurableSubscription {self.name!r} {self.filter!r} on {getattr(self.store, 'path', self.store)}>"


class _Lease:
    """A subscription's hold on its name: taken, kept and released through the store's lease methods."""

    def __init__(self, store: Any, name: str, ttl: float) -> None:
        self.store, self.name, self.ttl = store, name, ttl
        self.key = f"subscription:{name}"
        self.token = secrets.token_hex(4)  # tells apart two subscriptions of one process
        self.held = self.lost = False
        self.renewed = 0.0

    @property
    def holder(self) -> str:
        return f"{current_actor()}#{self.token}"

    def take(self) -> None:
        """Hold the name, or raise ``SubscriptionBusyError`` naming who does."""
        acquire = getattr(self.store, "acquire_lease", None)
        if acquire is None:
            log.warning("store %r keeps no leases: a second consumer of %r would not be refused.",
                        self.store, self.name)
            return
        busy = acquire(self.key, self.holder, self.ttl)
        if busy is not None and _gone(busy[0]):  # its process died on this host: no need to wait
            log.warning("durable subscription %r: its consumer %s is gone; taking over.", self.name,
                        _who(busy[0]))
            busy = acquire(self.key, self.holder, self.ttl, replacing=busy[0])
        if busy is not None:
            holder, left = busy
            path = getattr(self.store, "path", None)
            raise SubscriptionBusyError(
                f"Durable subscription {self.name!r} is being consumed by {_who(holder)} (ledger {path}); a "
                "second consumer is refused so that no event is delivered twice. Stop that consumer, or "
                f"retry later: its lease runs out {left:.0f} s after it last renewed it (at once if its "
                "process is gone on this host).", self.name, _who(holder), left, False, path)
        self.held, self.lost, self.renewed = True, False, time.monotonic()

    def keep(self) -> None:
        """Renew the lease when a third of its time passed; raise if another consumer took it."""
        if not self.held or time.monotonic() - self.renewed < self.ttl / 3:
            return
        if self.store.renew_lease(self.key, self.holder, self.ttl):
            self.renewed = time.monotonic()
            return
        self.held, self.lost = False, True
        path = getattr(self.store, "path", None)
        raise SubscriptionBusyError(
            f"Durable subscription {self.name!r} lost its lease in ledger {path}: it was not renewed for "
            f"{self.ttl:g} s (a listener call longer than lease_ttl=, or a stopped process) and another "
            "consumer may have taken over. Delivery stopped here; the cursor is left to that consumer.",
            self.name, "", None, True, path)

    def release(self) -> None:
        if self.held:
            self.held = False
            self.store.release_lease(self.key, self.holder)


def _who(holder: str) -> str:
    """``user@host:pid`` of a lease holder (without the token)."""
    return holder.rpartition("#")[0] or holder


def _gone(holder: str) -> bool:
    """Whether a holder's process was on this host and no longer runs (a zombie counts as gone)."""
    who, _, pid_text = _who(holder).rpartition(":")
    if who.rpartition("@")[2] != current_host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: it runs
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _open_store(store: Any) -> tuple[Any, bool]:
    if store is None:
        from statemachine import wiring

        return wiring.default_ledger(), False
    if isinstance(store, (str, os.PathLike)):
        from eventstore import EventStore

        return EventStore(os.fspath(store)), True
    return store, False


def _describe(filter_dict: Any) -> str:
    if not isinstance(filter_dict, dict):
        return repr(filter_dict)
    given = ", ".join(f"{k}={v!r}" for k, v in filter_dict.items() if v is not None)
    return f"({given})" if given else "(everything)"


def _name_of(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _check_store_methods(store: Any, needs: tuple[str, ...]) -> None:
    missing = [m for m in needs if not callable(getattr(store, m, None))]
    if missing:
        raise SubscriptionStoreError(
            f"store {store!r} cannot keep a durable cursor: it has no {', '.join(missing)}(). "
            "Pass an eventstore.EventStore or the path of a ledger file."
        )

