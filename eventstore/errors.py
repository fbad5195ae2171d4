"""Errors of the ledger, under ``statemachine.errors.LedgerError``.

::

    LedgerError (statemachine.errors)        the ledger cannot be opened, read or written
    ├── NotALedgerError                       the file is not SQLite, or SQLite but not a ledger
    ├── SchemaVersionError                    the ledger was written by a newer schema version
    ├── LedgerConnectionError                 a database server cannot be reached, refuses the login, bad URL
    ├── LedgerWriteError                      an append (or the creation of the file) failed
    │   └── LedgerLocationError               the folder is missing or cannot be written
    ├── RunNotFoundError (KeyError)           no event of that run id in the ledger
    ├── ImportLineError (ValueError)          a line of a JSON-lines export cannot be imported
    └── RunExistsError                        a new run was given the id of a run already there
    CheckpointError (statemachine.errors.StateLedgerError)
                                              a checkpoint or key file that cannot be read or used

Every message names the file, says what was expected and found and what to
do; the facts are attributes too (``path`` always).
"""

from __future__ import annotations

from statemachine.errors import LedgerError, StateLedgerError

__all__ = [
    "LedgerError",
    "NotALedgerError",
    "SchemaVersionError",
    "LedgerWriteError",
    "LedgerLocationError",
    "LedgerConnectionError",
    "RunNotFoundError",
    "ImportLineError",
    "RunExistsError",
    "CheckpointError",
]


class NotALedgerError(LedgerError):
    """The file is not a SQLite database, or a SQLite database that is not a ledger.

    ``found`` says what the file is instead.
    """

    def __init__(self, message: str, path: str | None = None, found: str = "") -> None:
        super().__init__(message, path)
        self.found = found


class SchemaVersionError(LedgerError):
    """The ledger was written by a newer stateledger (``found`` > ``supported``)."""

    def __init__(self, message: str, path: str | None = None, found: int = 0, supported: int = 0) -> None:
        super().__init__(message, path)
        self.found = found
        self.supported = supported


class LedgerWriteError(LedgerError):
    """An append failed: disk full, locked past the timeout, read-only, removed.

    ``reason`` is a short word for the cause (``"full"``, ``"locked"``,
    ``"read-only"``, ``"removed"``, ``"closed"``, ``"io"``, ``"location"``).
    """

    def __init__(self, message: str, path: str | None = None, reason: str = "io") -> None:
        super().__init__(message, path)
        self.reason = reason


class LedgerLocationError(LedgerWriteError):
    """The ledger's folder does not exist or cannot be written; nothing was created."""

    def __init__(self, message: str, path: str | None = None, folder: str = "") -> None:
        super().__init__(message, path, "location")
        self.folder = folder


class LedgerConnectionError(LedgerError):
    """A PostgreSQL ledger's server cannot be reached, refuses the login, or has no such database.

    ``reason``: ``"unreachable"``, ``"login"``, ``"database"`` or ``"url"`` (the
    URL cannot be read). The message
    names the URL without its password.
    """

    def __init__(self, message: str, path: str | None = None, reason: str = "unreachable") -> None:
        super().__init__(message, path)
        self.reason = reason


class RunNotFoundError(LedgerError, KeyError):
    """No event of ``run_id`` is in the ledger."""

    def __init__(self, message: str, path: str | None = None, run_id: str = "") -> None:
        super().__init__(message, path)
        self.run_id = run_id

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ImportLineError(LedgerError, ValueError):
    """A line of a JSON-lines export cannot be imported, so nothing of the file was.

    ``file`` names the export, ``line`` the line (1-based); ``reason`` is a
    short word for what was wrong: ``"too long"``, ``"not UTF-8"``, ``"cut
    off"``, ``"not JSON"``, ``"not an event"``, ``"hash"``, ``"chain"`` (a
    line missing or out of order) or ``"ledger"`` (the run does not continue
    what the ledger holds, e.g. it was imported already).
    """

    def __init__(self, message: str, path: str | None = None, file: str = "", line: int = 0,
                 reason: str = "") -> None:
        super().__init__(message, path)
        self.file = file
        self.line = line
        self.reason = reason


class RunExistsError(LedgerError):
    """``flow.run(run_id=X)`` (or ``--run-id X``) where run ``X`` is already in the ledger.

    A run id names one run: nothing was written. ``run_id`` names it.
    """

    def __init__(self, message: str, path: str | None = None, run_id: str = "") -> None:
        super().__init__(message, path)
        self.run_id = run_id


class CheckpointError(StateLedgerError):
    """A checkpoint or key file that cannot be read, is not one, or cannot be used (``path``: the file).

    Not a ``LedgerError``: the ledger is fine, the input is not. (A checkpoint
    the ledger does not extend is not an error but a problem ``verify`` reports.)
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
