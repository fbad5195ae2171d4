"""Notifiers: tell Slack, any webhook, an inbox or any service apprise reaches about a transition.

Each notifier is a *pure formatter* (a ``Notice`` -> text or JSON) plus a
*sender* (HTTP with urllib, SMTP with smtplib, or apprise). Two ways to use one:

* **as a state handler**, pre-commit: ``Task(state_handlers=[slack_notifier])``
  (every transition) or ``state_handlers=[slack_notifier(only_states=[Failed])]``.
  It returns the new state unchanged; a delivery failure raises, so (as in
  Prefect 1) the task ends ``Failed`` with a message naming the cause.
* **as a listener**, post-commit: ``subscribe(notifier.as_listener())`` logs a
  failed delivery and never touches the run; a durable subscription takes
  ``notifier.as_durable_listener()``, which raises on failure so the
  subscription keeps the event and delivers it again on the next catch-up.

Credentials (the webhook URL, headers, SMTP login, apprise URLs) come from
``Secret``s, read at delivery time. Errors never quote a secret's value; the
text sent passes through ``mask`` so a secret never leaves in a notification.
"""

from __future__ import annotations

import datetime
import http.client
import inspect
import json
import logging
import re
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Callable, Iterable

from statemachine.engine import current_run_id
from statemachine.errors import NotifierError
from statemachine.secrets import Secret, mask, remember
from statemachine.states import Failed, Retrying, State, Success, utcnow

__all__ = [
    "slack_notifier",
    "webhook_notifier",
    "email_notifier",
    "apprise_notifier",
    "Notifier",
    "Notice",
    "format_text",
    "format_title",
    "event_payload",
    "TEMPLATE_FIELDS",
    "DeliveryError",
    "DeliveryTimeout",
    "NotifierConfigError",
]

log = logging.getLogger("stateledger")


class NotifierConfigError(NotifierError, ValueError, TypeError):
    """A notifier was configured with options it cannot use (bad template, state, smtp_type...)."""


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


# --- the formatter ---------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """What one notification tells: a transition of a task or flow, from a handler call or an event."""

    kind: str  # "task" | "flow"
    name: str
    key: str
    flow: str  # the flow's name ("" when a state handler cannot know it)
    run_id: str | None  # None outside a run (e.g. a handler tried by hand)
    old_state: State
    new_state: State
    time: datetime.datetime
    attempt: int | None = None
    seq: int | None = None
    event_id: str = ""
    rewritten_by: tuple[str, ...] = ()

    @classmethod
    def from_handler(cls, obj: Any, old_state: State, new_state: State) -> Notice:
        """A notice from a state handler's arguments (a Task, a Flow, or a replay stand-in)."""
        kind = getattr(obj, "kind", None)
        if kind not in ("task", "flow"):
            from statemachine.flow import Flow

            kind = "flow" if isinstance(obj, Flow) else "task"
        name = str(getattr(obj, "name", None) or obj)
        key = getattr(obj, "key", None)
        run_id = getattr(obj, "run_id", None) or current_run_id()
        return cls(
            kind=kind,
            name=name,
            key=key if isinstance(key, str) else name,
            flow=name if kind == "flow" else str(getattr(obj, "flow", "") or ""),
            run_id=run_id if isinstance(run_id, str) else None,
            old_state=old_state,
            new_state=new_state,
            time=utcnow(),
            attempt=getattr(new_state, "run_count", None),
        )

    @classmethod
    def from_event(cls, event: Any) -> Notice:
        """A notice from a committed ``Event`` (live listener, durable subscription, replay)."""
        return cls(
            kind=event.kind,
            name=event.name,
            key=event.key,
            flow=event.flow or (event.name if event.kind == "flow" else ""),
            run_id=event.run_id,
            old_state=event.old_state,
            new_state=event.new_state,
            time=event.timestamp,
            attempt=event.attempt,
            seq=event.seq,
            event_id=event.event_id,
            rewritten_by=tuple(event.rewritten_by or ()),
        )


def _when(moment: Any) -> str:
    if not isinstance(moment, datetime.datetime):
        return "" if moment is None else str(moment)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def default_text(n: Notice) -> str:
    """The default message: who, which state and why, when it retries, which run, when."""
    state = n.new_state
    head = f"{n.kind.capitalize()} {n.name}"
    if n.kind == "task" and n.flow:
        head += f" (flow {n.flow})"
    head += f" is now {type(state).__name__}"
    head += f": {state.message}" if state.message else ""
    lines = [head if head.endswith((".", "!", "?")) else head + "."]
    if isinstance(state, Retrying):
        lines.append(f"It will run again at {_when(state.start_time)}.")
    lines.append(f"Run {n.run_id} at {_when(n.time)}." if n.run_id else f"At {_when(n.time)}.")
    return "\n".join(lines)


def _fields(n: Notice) -> dict[str, Any]:
    state = n.new_state
    return {
        "kind": n.kind,
        "Kind": n.kind.capitalize(),
        "name": n.name,
        "key": n.key,
        "flow": n.flow,
        "run_id": n.run_id or "",
        "state": type(state).__name__,
        "message": state.message or "",
        "new_state": repr(state),
        "old_state": repr(n.old_state),
        "old": type(n.old_state).__name__,
        "time": _when(n.time),
        "timestamp": n.time.isoformat(),
        "start_time": _when(getattr(state, "start_time", None)),
        "attempt": "" if n.attempt is None else n.attempt,
        "text": default_text(n),
    }


#: The ``{fields}`` a ``template=`` may use.
TEMPLATE_FIELDS = tuple(
    _fields(Notice("task", "t", "t-1", "f", "r", State(), State(), utcnow()))  # type: ignore[arg-type]
)


def format_text(notice: Notice, template: str | None = None) -> str:
    """The notification's text: ``template.format(**fields)``, or the default text."""
    text = default_text(notice) if template is None else template.format(**_fields(notice))
    return mask(text)


def format_title(notice: Notice) -> str:
    """A one-line title (email subject, apprise title)."""
    return mask(f"[stateledger] {notice.kind.capitalize()} {notice.name}: {type(notice.new_state).__name__}")


def _state_json(state: State | None) -> dict[str, Any] | None:
    if state is None:
        return None
    out: dict[str, Any] = {"type": type(state).__name__, "message": state.message}
    for field, value in state.extras().items():
        out[field] = value.isoformat() if isinstance(value, datetime.datetime) else value
    return out


def event_payload(notice: Notice, template: str | None = None) -> dict[str, Any]:
    """The transition as JSON-able data (what ``webhook_notifier`` posts). Results are left out."""
    payload = {
        "text": format_text(notice, template),
        "run_id": notice.run_id,
        "flow": notice.flow,
        "kind": notice.kind,
        "name": notice.name,
        "key": notice.key,
        "attempt": notice.attempt,
        "timestamp": notice.time.isoformat(),
        "old_state": _state_json(notice.old_state),
        "new_state": _state_json(notice.new_state),
        "seq": notice.seq,
        "event_id": notice.event_id or None,
        "rewritten_by": list(notice.rewritten_by),
    }
    return _masked(payload)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


# --- the notifier: filter, format, send; as a handler or a listener ---------------


def _state_classes(states: Any, option: str) -> tuple[type[State], ...] | None:
    if states is None:
        return None
    if isinstance(states, type):
        states = [states]
    classes = tuple(states)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, State)):
            raise NotifierConfigError(f"{option}= takes State classes (e.g. [Failed, Retrying]), got {cls!r}")
    return classes


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
        self.only_states = _state_classes(only_states, "only_states")
        self.ignore_states = _state_classes(ignore_states, "ignore_states") or ()
        if template is not None:
            _check_template(template)
        self.template = template
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise NotifierConfigError(f"timeout= must be a positive number of seconds, got {timeout!r}")
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


def _check_template(template: str) -> None:
    if not isinstance(template, str):
        raise NotifierConfigError(f"template= must be a str.format string, got {template!r}")
    sample = Notice("task", "t", "t-1", "f", "r", State(), State(), utcnow())
    try:
        template.format(**_fields(sample))
    except KeyError as exc:
        raise NotifierConfigError(
            f"template= uses the field {{{exc.args[0]}}}, which does not exist; "
            f"the fields are: {', '.join(TEMPLATE_FIELDS)}"
        ) from None
    except (IndexError, ValueError) as exc:
        raise NotifierConfigError(
            f"template= is not a valid str.format string ({exc}); use named fields such as {{name}} {{state}}"
        ) from None


# --- HTTP ------------------------------------------------------------------------


def post_json(url: str, body: Any, *, what: str, headers: dict[str, str] | None = None, timeout: float = 10) -> int:
    """POST ``body`` as JSON; returns the 2xx status, raises ``DeliveryError`` otherwise.

    ``what`` names the target in errors ("Slack webhook (secret X)"): the URL
    itself is a secret and is never quoted.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotifierConfigError(f"{what} does not hold an http(s) URL; set it to the full https://... address")
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "stateledger", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        detail = _read_detail(exc)
        raise DeliveryError(
            f"{what} answered HTTP {exc.code} {exc.reason}{detail}", notifier=what, reason="http-status", status=exc.code
        ) from None
    except urllib.error.URLError as exc:
        raise _connection_error(exc.reason, what, timeout) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _connection_error(exc, what, timeout) from None
    if not 200 <= status < 300:
        raise DeliveryError(f"{what} answered HTTP {status}, not 2xx", notifier=what, reason="http-status", status=status)
    return status


def _read_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read(300).decode("utf-8", "replace").strip()
    except Exception:
        body = ""
    finally:
        exc.close()
    return f": {body}" if body else ""


def _connection_error(reason: Any, what: str, timeout: float) -> DeliveryError:
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return DeliveryTimeout(
            f"{what} did not answer within {timeout:g} s (timeout={timeout:g})", notifier=what, reason="timeout"
        )
    if isinstance(reason, ConnectionRefusedError):
        return DeliveryError(
            f"{what} refused the connection (nothing listens at that address)", notifier=what, reason="refused"
        )
    return DeliveryError(f"{what} could not be reached: {reason}", notifier=what, reason="connection")


def _headers_from(secret_name: str) -> dict[str, str]:
    raw = Secret(secret_name).get()
    try:
        headers = json.loads(raw)
    except ValueError:
        headers = None
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise NotifierConfigError(
            f"Secret {secret_name!r} must hold the headers as a JSON object of strings, "
            '{"Authorization": "Bearer ..."} (or a TOML table in the secrets file)'
        )
    for value in headers.values():
        remember(value)
    return headers


class SlackNotifier(Notifier):
    """Posts ``{"text": ...}`` to a Slack incoming webhook whose URL is a secret."""

    label = "slack_notifier"

    def __init__(self, *, webhook_secret: str = "SLACK_WEBHOOK_URL", **options: Any) -> None:
        super().__init__(**options)
        self.webhook_secret = _secret_name(webhook_secret, "webhook_secret")

    def payload(self, notice: Notice) -> dict[str, Any]:
        return {"text": self.text(notice)}

    def send(self, notice: Notice) -> None:
        url = Secret(self.webhook_secret).get()
        post_json(url, self.payload(notice), what=f"Slack webhook (secret {self.webhook_secret})", timeout=self.timeout)


class WebhookNotifier(Notifier):
    """POSTs the transition as JSON (``event_payload``) to a URL that is a secret."""

    label = "webhook_notifier"

    def __init__(self, *, webhook_secret: str, headers_secret: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.webhook_secret = _secret_name(webhook_secret, "webhook_secret")
        self.headers_secret = None if headers_secret is None else _secret_name(headers_secret, "headers_secret")

    def send(self, notice: Notice) -> None:
        url = Secret(self.webhook_secret).get()
        headers = _headers_from(self.headers_secret) if self.headers_secret else {}
        post_json(
            url,
            event_payload(notice, self.template),
            what=f"webhook (secret {self.webhook_secret})",
            headers=headers,
            timeout=self.timeout,
        )


# --- email -----------------------------------------------------------------------

SMTP_TYPES = ("SSL", "STARTTLS", "INSECURE")


class EmailNotifier(Notifier):
    """Sends an email over SMTP: implicit TLS ("SSL"), "STARTTLS", or plain ("INSECURE")."""

    label = "email_notifier"

    def __init__(
        self,
        *,
        email_to: str | Iterable[str],
        smtp_server: str = "localhost",
        smtp_port: int = 465,
        smtp_type: str = "SSL",
        email_from: str | None = None,
        username_secret: str | None = None,
        password_secret: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        recipients = [email_to] if isinstance(email_to, str) else list(email_to or ())
        self.email_to = [a.strip() for r in recipients for a in str(r).split(",") if a.strip()]
        if not self.email_to:
            raise NotifierConfigError("email_notifier needs email_to=, one address or a list of addresses")
        kind = str(smtp_type).upper()
        if kind not in SMTP_TYPES:
            raise NotifierConfigError(f"smtp_type= must be one of {', '.join(SMTP_TYPES)}, got {smtp_type!r}")
        if (username_secret is None) != (password_secret is None):
            raise NotifierConfigError("username_secret= and password_secret= go together: give both, or neither")
        self.smtp_server, self.smtp_port, self.smtp_type = smtp_server, int(smtp_port), kind
        self.email_from = email_from
        self.username_secret = username_secret and _secret_name(username_secret, "username_secret")
        self.password_secret = password_secret and _secret_name(password_secret, "password_secret")

    def message(self, notice: Notice, sender: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = format_title(notice)
        msg["From"] = sender
        msg["To"] = ", ".join(self.email_to)
        msg.set_content(self.text(notice))
        return msg

    def send(self, notice: Notice) -> None:
        user = Secret(self.username_secret).get() if self.username_secret else None
        password = Secret(self.password_secret).get() if self.password_secret else None
        sender = self.email_from or (user if user and "@" in user else f"stateledger@{socket.gethostname()}")
        msg = self.message(notice, sender)
        where = f"SMTP server {self.smtp_server}:{self.smtp_port} ({self.smtp_type})"
        try:
            if self.smtp_type == "SSL":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.smtp_server, self.smtp_port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(self.smtp_server, self.smtp_port, timeout=self.timeout)
            with client:
                if self.smtp_type == "STARTTLS":
                    client.starttls(context=ssl.create_default_context())
                if user is not None:
                    client.login(user, password or "")
                client.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"{where} rejected the login of the user in secret {self.username_secret}: "
                f"{exc.smtp_code} {_smtp_text(exc.smtp_error)}",
                notifier=where, reason="smtp-login", status=exc.smtp_code,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"{where} refused the mail: {exc.smtp_code} {_smtp_text(exc.smtp_error)}",
                notifier=where, reason="smtp", status=exc.smtp_code,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"{where} refused the recipients {', '.join(exc.recipients)}", notifier=where, reason="smtp"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"{where} does not support it: {exc}", notifier=where, reason="smtp") from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"{where}: TLS failed ({exc})", notifier=where, reason="tls") from None
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):  # smtplib reports a read timeout this way
                raise _connection_error(exc.__context__, where, self.timeout) from None
            raise DeliveryError(f"{where} closed the connection: {exc}", notifier=where, reason="connection") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise _connection_error(exc, where, self.timeout) from None


def _smtp_text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


# --- apprise ---------------------------------------------------------------------


def _import_apprise() -> Any:
    try:
        import apprise
    except ImportError:
        raise NotifierConfigError(
            "apprise_notifier needs the 'apprise' package, which is not installed: pip install apprise"
        ) from None
    return apprise


class AppriseNotifier(Notifier):
    """Notifies every service apprise reaches; the apprise URLs (space or comma separated) are a secret."""

    label = "apprise_notifier"

    def __init__(self, *, urls_secret: str = "APPRISE_URLS", **options: Any) -> None:
        super().__init__(**options)
        self.urls_secret = _secret_name(urls_secret, "urls_secret")

    @staticmethod
    def notify_type(apprise: Any, state: State) -> Any:
        if isinstance(state, Failed):
            return apprise.NotifyType.FAILURE
        if isinstance(state, Retrying):
            return apprise.NotifyType.WARNING
        if isinstance(state, Success):
            return apprise.NotifyType.SUCCESS
        return apprise.NotifyType.INFO

    def send(self, notice: Notice) -> None:
        apprise = _import_apprise()
        what = f"apprise (secret {self.urls_secret})"
        urls = [u for u in re.split(r"[\s,]+", Secret(self.urls_secret).get()) if u]
        service = apprise.Apprise()
        for url in urls:
            remember(url)
            if not _add_quietly(service, url):
                scheme = url.split("://", 1)[0] if "://" in url else "?"
                raise NotifierConfigError(
                    f"{what} holds a URL apprise does not understand (scheme {scheme!r}); "
                    "see apprise's list of services for the URL forms"
                )
        if not urls:
            raise NotifierConfigError(f"{what} is empty; put one or more apprise URLs in it")
        options: dict[str, Any] = {}
        if "timeout" in _parameters(service.notify):
            options["timeout"] = self.timeout
        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            ok = service.notify(
                body=self.text(notice),
                title=format_title(notice),
                notify_type=self.notify_type(apprise, notice.new_state),
                **options,
            )
        if not ok:
            detail = " ".join(captured.getvalue().split())
            raise DeliveryError(
                f"{what} could not deliver the notification: {detail or 'apprise gave no reason'}",
                notifier=what, reason="apprise",
            )


def _add_quietly(service: Any, url: str) -> bool:
    """``service.add(url)``; apprise's first add loads its plugins, and on Python 3.11
    one of them imports the deprecated ``imghdr``: that is apprise's warning, not the user's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(service.add(url))


def _parameters(fn: Any) -> Any:
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


def _secret_name(name: Any, option: str) -> str:
    if not isinstance(name, str) or not name:
        raise NotifierConfigError(f"{option}= names a secret (e.g. 'SLACK_WEBHOOK_URL'), got {name!r}")
    return name


# --- the public functions: handlers as they are, or configured with keywords ---------

_UNSET: Any = object()


def _handler_or_notifier(notifier: Notifier, args: tuple[Any, ...], fn: str) -> Any:
    if not args:
        return notifier
    if len(args) != 3:
        raise TypeError(
            f"{fn} is a state handler {fn}(obj, old_state, new_state), or call it with keyword "
            f"options only ({fn}(only_states=[Failed])) to configure one; got {len(args)} positional argument(s)"
        )
    return notifier(*args)


def slack_notifier(
    *args: Any,
    only_states: Any = None,
    ignore_states: Any = None,
    webhook_secret: str = "SLACK_WEBHOOK_URL",
    template: str | None = None,
    timeout: float = 10,
) -> Any:
    """Post to a Slack incoming webhook (URL in the secret ``webhook_secret``).

    ``state_handlers=[slack_notifier]`` notifies every transition; with keyword
    options only it returns a configured ``SlackNotifier``.
    """
    notifier = SlackNotifier(
        only_states=only_states, ignore_states=ignore_states, webhook_secret=webhook_secret,
        template=template, timeout=timeout,
    )
    return _handler_or_notifier(notifier, args, "slack_notifier")


def webhook_notifier(
    *args: Any,
    webhook_secret: str = _UNSET,
    only_states: Any = None,
    ignore_states: Any = None,
    headers_secret: str | None = None,
    template: str | None = None,
    timeout: float = 10,
) -> Any:
    """POST each transition as JSON to the URL in the secret ``webhook_secret``.

    ``headers_secret`` names a secret holding extra headers as a JSON object.
    """
    if webhook_secret is _UNSET:
        raise NotifierConfigError(
            "webhook_notifier needs webhook_secret=, the name of the secret holding the URL: "
            "webhook_notifier(webhook_secret='MY_WEBHOOK_URL')"
        )
    notifier = WebhookNotifier(
        webhook_secret=webhook_secret, only_states=only_states, ignore_states=ignore_states,
        headers_secret=headers_secret, template=template, timeout=timeout,
    )
    return _handler_or_notifier(notifier, args, "webhook_notifier")


def email_notifier(
    *args: Any,
    email_to: str | Iterable[str] = _UNSET,
    only_states: Any = None,
    ignore_states: Any = None,
    smtp_server: str = "localhost",
    smtp_port: int = 465,
    smtp_type: str = "SSL",
    email_from: str | None = None,
    username_secret: str | None = None,
    password_secret: str | None = None,
    template: str | None = None,
    timeout: float = 10,
) -> Any:
    """Email each transition over SMTP; the login (if any) comes from secrets."""
    if email_to is _UNSET:
        raise NotifierConfigError("email_notifier needs email_to=, e.g. email_notifier(email_to='me@example.org')")
    notifier = EmailNotifier(
        email_to=email_to, only_states=only_states, ignore_states=ignore_states, smtp_server=smtp_server,
        smtp_port=smtp_port, smtp_type=smtp_type, email_from=email_from, username_secret=username_secret,
        password_secret=password_secret, template=template, timeout=timeout,
    )
    return _handler_or_notifier(notifier, args, "email_notifier")


def apprise_notifier(
    *args: Any,
    urls_secret: str = "APPRISE_URLS",
    only_states: Any = None,
    ignore_states: Any = None,
    template: str | None = None,
    timeout: float = 10,
) -> Any:
    """Notify every service whose apprise URL is in the secret ``urls_secret`` (needs ``apprise``)."""
    notifier = AppriseNotifier(
        urls_secret=urls_secret, only_states=only_states, ignore_states=ignore_states,
        template=template, timeout=timeout,
    )
    return _handler_or_notifier(notifier, args, "apprise_notifier")
