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

The package: ``format`` (the pure formatter), ``base`` (the ``Notifier``, its
errors and shared helpers), ``http`` (Slack, webhooks), ``email`` (SMTP),
``apprise``. Import the public names from ``subscribers.notifiers`` itself.
"""

from __future__ import annotations

from .apprise import AppriseNotifier, apprise_notifier
from .base import DeliveryError, DeliveryTimeout, Notifier, NotifierConfigError
from .email import EmailNotifier, email_notifier
from .format import TEMPLATE_FIELDS, Notice, event_payload, format_text, format_title
from .http import SlackNotifier, WebhookNotifier, slack_notifier, webhook_notifier

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

# The classes keep the name they had before the package was split: a notifier
# used as a state handler is recorded in the ledger (``rewritten_by``) and in
# error messages as ``subscribers.notifiers.SlackNotifier``, whichever module
# defines it.
for _public in (Notifier, SlackNotifier, WebhookNotifier, EmailNotifier, AppriseNotifier, Notice,
                DeliveryError, DeliveryTimeout, NotifierConfigError):
    _public.__module__ = __name__
del _public
