"""The notifier: filter by state, format, send; used as a state handler or a listener.

Also the notifiers' errors and the helpers every sender shares.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Callable

from statemachine.errors import ArgumentError, NotifierError
from statemachine.filters import parse_states
from statemachine.secrets import mask
from statemachine.states import State

from .format import Notice, format_text, template_problem

__all__ = [
    "Notifier",
    "NotifierConfigError",
    "DeliveryError",
    "DeliveryTimeout",
    "connection_error",
    "secret_name",
    "handler_or_notifier",
    "UNSET",
]

log = logging.getLogger("stateledger")


class NotifierConfigError(NotifierError, ArgumentError):
    """A notifier was configured with options it cannot use (bad template, state, smtp_type...).

    A ``NotifierError`` and an ``ArgumentError`` (so also ``ValueError`` and ``TypeError``).
    """


class DeliveryError(NotifierError):
    """A notification was not delivered; ``notifier`` and ``reason`` say which and why.

    ``reason`` is one of "http-status", "refused", "timeout", "connection",
    "smtp", "smtp-login", "tls", "apprise"; ``status`` is the HTTP or SMTP code when known.
    """

    def __init__(self, message: str, *, notifier: str = "", reason: str = "", status: int | None = None) -> None:
        super().__init__(mask(message))
        self.notifier, self.reason, self.status = notifier, reason, status


class DeliveryTimeout(DeliveryError):
    """The receiving server did not answer within the notifier's ``timeout``."""


def _states(value: Any, option: str) -> tuple[type[State], ...] | None:
    """``only_states=`` / ``ignore_states=`` through the one state-class parser."""
    try:
        return parse_states(value, option)
    except ArgumentError as exc:
        raise NotifierConfigError(str(exc), option, value) from None


class Notifier:
    """Filters transitions by state, formats them, sends them. Subclasses define ``send``."""

    label = "notifier"

    def __init__(
        self,
        *,
        only_states: Any = None,
        ignore_states: Any = None,
        template: str | None = None,
        timeout: float = 10,
    ) -> None:
        self.only_states = _states(only_states, "only_states")
        self.ignore_states = _states(ignore_states, "ignore_states") or ()
        if template is not None:
            problem = template_problem(template)
            if problem is not None:
                raise NotifierConfigError(problem, "template", template)
        self.template = template
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise NotifierConfigError(f"timeout= must be a positive number of seconds, got {timeout!r}", "timeout", timeout)
        self.timeout = float(timeout)

    def wants(self, state: State) -> bool:
        """Whether a transition into ``state`` is notified (subclasses of the listed states count)."""
        if self.only_states is not None and not isinstance(state, self.only_states):
            return False
        return not isinstance(state, self.ignore_states)

    def text(self, notice: Notice) -> str:
        return format_text(notice, self.template)

    def send(self, notice: Notice) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def notify(self, notice: Notice) -> bool:
        """Send ``notice`` if its state is wanted; raises on a failed delivery. True if sent."""
        if not self.wants(notice.new_state):
            return False
        self.send(notice)
        log.debug("%s delivered %s %s -> %s", self.label, notice.kind, notice.key, type(notice.new_state).__name__)
        return True

    def __call__(self, obj: Any, old_state: State, new_state: State) -> State:
        """As a state handler: notify, and return the new state unchanged (a failure raises)."""
        if self.wants(new_state):  # checked first: most transitions are not notified
            self.notify(Notice.from_handler(obj, old_state, new_state))
        return new_state

    def as_listener(self) -> Callable[[Any], None]:
        """A ``listener(event)`` for ``subscribe()``: a failed delivery is logged, never raised."""

        def listener(event: Any) -> None:
            try:
                self.notify(Notice.from_event(event))
            except Exception as exc:
                log.warning("%s could not deliver %r: %s", self.label, event, exc)

        listener.__qualname__ = f"{type(self).__name__}.listener"
        return listener

    def as_durable_listener(self) -> Callable[[Any], None]:
        """A ``listener(event)`` for a durable subscription: a failed delivery raises, so it is retried."""

        def durable_listener(event: Any) -> None:
            self.notify(Notice.from_event(event))

        durable_listener.__qualname__ = f"{type(self).__name__}.durable_listener"
        return durable_listener

    def __repr__(self) -> str:
        only = [c.__name__ for c in self.only_states] if self.only_states else "all"
        return f"<{type(self).__name__} states={only}>"


def connection_error(reason: Any, what: str, timeout: float) -> DeliveryError:
    """The ``DeliveryError`` for a connection that failed (refused, timed out, unreachable)."""
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return DeliveryTimeout(
            f"{what} did not answer within {timeout:g} s (timeout={timeout:g})", notifier=what, reason="timeout"
        )
    if isinstance(reason, ConnectionRefusedError):
        return DeliveryError(
            f"{what} refused the connection (nothing listens at that address)", notifier=what, reason="refused"
        )
    return DeliveryError(f"{what} could not be reached: {reason}", notifier=what, reason="connection")


def secret_name(name: Any, option: str) -> str:
    """``name`` if it can name a secret, else a clear ``NotifierConfigError``."""
    if not isinstance(name, str) or not name:
        raise NotifierConfigError(f"{option}= names a secret (e.g. 'SLACK_WEBHOOK_URL'), got {name!r}", option, name)
    return name


#: The default of a required keyword option (its absence gets a clear error).
UNSET: Any = object()


def handler_or_notifier(notifier: Notifier, args: tuple[Any, ...], fn: str) -> Any:
    """``notifier`` itself (configured with keywords), or its answer as a state handler called with ``args``."""
    if not args:
        return notifier
    if len(args) != 3:
        raise NotifierConfigError(
            f"{fn} is a state handler {fn}(obj, old_state, new_state), or call it with keyword "
            f"options only ({fn}(only_states=[Failed])) to configure one; got {len(args)} positional argument(s)",
            "args",
            args,
        )
    return notifier(*args)
