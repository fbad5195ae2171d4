"""Where a ledger is and which recorder opens it: the default path, targets, URLs shown without passwords.

``EventStore`` (``eventstore.store``) opens its target through ``open_recorder``;
the command line (``eventstore.cli.options``) too.
"""

from __future__ import annotations

import logging
import os
import re
import stat

from statemachine.errors import ArgumentError

from .errors import LedgerError
from .protocol import Recorder

__all__ = ["default_path", "open_recorder", "is_url", "without_password", "DEFAULT_TIMEOUT"]

#: Seconds an append waits for another process's write lock before failing.
DEFAULT_TIMEOUT = 10.0


def default_path() -> str:
    """``STATELEDGER_DB``, else ``~/.stateledger/ledger.db`` (its folder made private to the user).

    An existing ``~/.stateledger`` that group or others may use is tightened to
    0700, with a warning: it holds the ledger and the secrets file.
    """
    path = os.environ.get("STATELEDGER_DB")
    if path:
        return os.path.expanduser(path)
    folder = os.path.join(os.path.expanduser("~"), ".stateledger")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    mode = os.stat(folder).st_mode
    if os.name == "posix" and stat.S_IMODE(mode) & 0o077 and not os.path.islink(folder):
        try:
            os.chmod(folder, 0o700)
        except OSError as exc:  # not ours to change: say so, and go on
            logging.getLogger("stateledger").warning(
                "%s is accessible to other users (mode %o) and could not be made private (%s); "
                "run: chmod 700 %s", folder, stat.S_IMODE(mode), exc.strerror, folder)
        else:
            logging.getLogger("stateledger").warning(
                "%s was accessible to other users (mode %o); it holds your ledger and secrets, so it "
                "was made private to you (mode 700).", folder, stat.S_IMODE(mode))
    return os.path.join(folder, "ledger.db")


def open_recorder(target: str, *, durability: str = "normal", timeout: float = DEFAULT_TIMEOUT,
                  create: bool = True) -> Recorder:
    """The recorder a target names: ``":memory:"``, a file path, ``sqlite:///path``, ``postgresql://...``.

    ``create=False``: a PostgreSQL database whose schema holds no ledger is
    refused rather than given one (read commands; a SQLite file is checked by its caller).
    """
    if durability not in ("normal", "full"):
        raise ArgumentError(f'durability must be "normal" or "full", got {durability!r}')
    if target == ":memory:":
        from .memory import MemoryRecorder

        return MemoryRecorder()
    scheme = target.partition("://")[0].lower() if "://" in target else ""
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresRecorder
        except ModuleNotFoundError as exc:
            if exc.name != "psycopg":
                raise
            raise LedgerError(
                f"Cannot open the PostgreSQL ledger {without_password(target)}: psycopg is not installed "
                "(pip install 'stateledger[postgres]'), or cannot load libpq.", without_password(target)) from None
        return PostgresRecorder(target, durability=durability, timeout=timeout, create=create)
    if scheme == "sqlite":
        target = target[len("sqlite://"):]
    elif scheme:
        raise LedgerError(
            f"Cannot open ledger {without_password(target)}: unknown scheme {scheme!r}. Give a file "
            "path, sqlite:///path, postgresql://user@host/db or :memory:.", without_password(target))
    from .sqlite import SQLiteRecorder

    return SQLiteRecorder(target, durability=durability, timeout=timeout)


def is_url(target: str) -> bool:
    """Whether ``target`` names a database server (``postgresql://...``) rather than a file."""
    return target.partition("://")[0].lower() in ("postgresql", "postgres") and "://" in target


def without_password(url: str) -> str:
    """``url`` with its password (``user:PASSWORD@`` or ``?password=``) shown as ``***``: for messages."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, host = rest.partition("/")[0].rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:***@{rest[len(userinfo) + 1:]}"
    return re.sub(r"([?&]password=)[^&]*", r"\1***", f"{head}://{rest}")
