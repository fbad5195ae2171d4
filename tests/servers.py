"""Real servers on 127.0.0.1 for the notifier tests: an HTTP receiver, a silent server,
a closed port, an SMTP server (aiosmtpd) with optional TLS and login, and a
self-signed certificate. Each is a context manager that closes what it opened.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_Server"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.requests.append(Request("POST", self.path, dict(self.headers.items()), body))
        status, text = self.server.answer
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    do_PUT = do_POST

    def log_message(self, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    requests: list[Request]
    answer: tuple[int, bytes]


@contextlib.contextmanager
def http_receiver(status: int = 200, body: bytes = b"ok") -> Iterator[_Server]:
    """An HTTP server that records each request and answers ``status``; ``.url`` ends in /hook."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests, server.answer = [], (status, body)
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers; yields its http URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        sock.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just released by us)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost from a throwaway CA (trustme): (cert, key).

    ``cert`` holds the leaf then the CA, so it serves both to load the server's
    chain and as the trust store (SSL_CERT_FILE) of a client that must accept it.
    """
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems) + ca.cert_pem.bytes())
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


@dataclass
class Mailbox:
    """What the SMTP server received: each message's envelope and content, and each login."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "content": envelope.content.decode("utf-8", "replace"),
            }
        )
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's Controller, listening on a port the OS picks."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@contextlib.contextmanager
def smtp_server(
    *,
    cert: tuple[Path, Path] | None = None,
    implicit_tls: bool = False,
    accept_login: tuple[str, str] | None = None,
    refuse_logins: bool = False,
) -> Iterator[tuple[_Controller, Mailbox]]:
    """An SMTP server on 127.0.0.1: plain, STARTTLS (``cert``), or implicit TLS; login optional.

    ``accept_login=(user, password)`` requires that login; ``refuse_logins``
    rejects every login.
    """
    box = Mailbox()
    kwargs: dict[str, Any] = {}
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
        if implicit_tls:
            kwargs["ssl_context"] = context
        else:
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = True
    if accept_login is not None or refuse_logins:

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            login = (auth_data.login.decode(), auth_data.password.decode())
            box.logins.append(login)
            return AuthResult(success=not refuse_logins and login == accept_login, handled=False)

        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=cert is not None)
    controller = _Controller(box, hostname="127.0.0.1", port=0, **kwargs)
    controller.start()
    try:
        yield controller, box
    finally:
        controller.stop()
