"""Notifiers over HTTP: a Slack incoming webhook and any JSON webhook (urllib, no extra package)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from statemachine.secrets import Secret, remember

from .base import UNSET, DeliveryError, Notifier, NotifierConfigError, connection_error, handler_or_notifier, secret_name
from .format import Notice, event_payload

__all__ = ["post_json", "SlackNotifier", "WebhookNotifier", "slack_notifier", "webhook_notifier"]


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
        raise connection_error(exc.reason, what, timeout) from None
    except (OSError, http.client.HTTPException) as exc:
        raise connection_error(exc, what, timeout) from None
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
        self.webhook_secret = secret_name(webhook_secret, "webhook_secret")

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
        self.webhook_secret = secret_name(webhook_secret, "webhook_secret")
        self.headers_secret = None if headers_secret is None else secret_name(headers_secret, "headers_secret")

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
    return handler_or_notifier(notifier, args, "slack_notifier")


def webhook_notifier(
    *args: Any,
    webhook_secret: str = UNSET,
    only_states: Any = None,
    ignore_states: Any = None,
    headers_secret: str | None = None,
    template: str | None = None,
    timeout: float = 10,
) -> Any:
    """POST each transition as JSON to the URL in the secret ``webhook_secret``.

    ``headers_secret`` names a secret holding extra headers as a JSON object.
    """
    if webhook_secret is UNSET:
        raise NotifierConfigError(
            "webhook_notifier needs webhook_secret=, the name of the secret holding the URL: "
            "webhook_notifier(webhook_secret='MY_WEBHOOK_URL')"
        )
    notifier = WebhookNotifier(
        webhook_secret=webhook_secret, only_states=only_states, ignore_states=ignore_states,
        headers_secret=headers_secret, template=template, timeout=timeout,
    )
    return handler_or_notifier(notifier, args, "webhook_notifier")
