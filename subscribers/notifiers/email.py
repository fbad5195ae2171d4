"""The email notifier: SMTP over implicit TLS ("SSL"), STARTTLS or plain ("INSECURE")."""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import Any, Iterable

from statemachine.secrets import Secret

from .base import UNSET, DeliveryError, Notifier, NotifierConfigError, connection_error, handler_or_notifier, secret_name
from .format import Notice, format_title

__all__ = ["SMTP_TYPES", "EmailNotifier", "email_notifier"]


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
        self.username_secret = username_secret and secret_name(username_secret, "username_secret")
        self.password_secret = password_secret and secret_name(password_secret, "password_secret")

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
                raise connection_error(exc.__context__, where, self.timeout) from None
            raise DeliveryError(f"{where} closed the connection: {exc}", notifier=where, reason="connection") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise connection_error(exc, where, self.timeout) from None


def _smtp_text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def email_notifier(
    *args: Any,
    email_to: str | Iterable[str] = UNSET,
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
    if email_to is UNSET:
        raise NotifierConfigError("email_notifier needs email_to=, e.g. email_notifier(email_to='me@example.org')")
    notifier = EmailNotifier(
        email_to=email_to, only_states=only_states, ignore_states=ignore_states, smtp_server=smtp_server,
        smtp_port=smtp_port, smtp_type=smtp_type, email_from=email_from, username_secret=username_secret,
        password_secret=password_secret, template=template, timeout=timeout,
    )
    return handler_or_notifier(notifier, args, "email_notifier")
