"""The apprise notifier: every service apprise reaches (apprise is imported only when sending)."""

from __future__ import annotations

import inspect
import logging
import re
import warnings
from typing import Any

from statemachine.secrets import Secret, remember
from statemachine.states import Failed, Retrying, State, Success

from .base import DeliveryError, Notifier, NotifierConfigError, handler_or_notifier, secret_name
from .format import Notice, format_title

__all__ = ["AppriseNotifier", "apprise_notifier"]


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
        self.urls_secret = secret_name(urls_secret, "urls_secret")

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
    return handler_or_notifier(notifier, args, "apprise_notifier")
