"""Options shared by the ``stateledger`` commands (as decorators), and opening the ledger.

``--db``, ``--json``, ``--state``, ``--run``, ``--flow``, ``--task``, ``--kind``,
``--since``/``--until``; ``open_ledger`` opens ``--db`` (a read command never
creates a ledger file).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from typing import Any, Callable, Iterator, Sequence

import click

from statemachine.errors import CommandInputError, LedgerError
from statemachine.filters import FilterError, parse_states
from statemachine.states import STATE_CLASSES, State

from ..store import EventStore, default_path, is_url, open_recorder, without_password

__all__ = [
    "db_option", "json_option", "state_option", "run_option", "flow_option", "task_option", "kind_option",
    "time_options", "parse_when", "ledger_path", "shown_path", "open_ledger", "limit_option", "resolve_run",
    "complete_run_ids", "run_argument", "traceback_option", "failure_traceback_option",
]


# --- shared options (decorators) -------------------------------------------------


def _check_db(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter(
            "an empty path names no ledger; give a file (--db ledger.db), or leave --db out for "
            "$STATELEDGER_DB / ~/.stateledger/ledger.db")
    return value


db_option = click.option(
    "--db", metavar="PATH|URL", default=None, callback=_check_db, is_eager=True,
    help="Ledger: a file, or postgresql://USER:PASS@HOST:PORT/DB[?schema=NAME]. "
    "Default: $STATELEDGER_DB, else ~/.stateledger/ledger.db.",
)
failure_traceback_option = click.option(
    "--traceback", "tracebacks", is_flag=True, help="Print where each failed task failed (its stored traceback).")
traceback_option = click.option(
    "--traceback", "show_traceback", is_flag=True, help="On an error in the flow file, print its whole traceback.")


def limit_option(default: int, what: str) -> Callable[..., Any]:
    """``--limit N``: the newest N (``default`` without it; 0: all), with a footer when more match."""
    return click.option(
        "--limit", type=click.IntRange(min=0), default=default, show_default=True, metavar="N",
        help=f"At most the newest N {what}; 0 for all.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _parse_states(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> tuple[type[State], ...] | None:
    """``--state Failed --state retrying,success`` -> state classes (subclasses match too)."""
    try:
        return parse_states(values, "--state", names=True) or None
    except FilterError as exc:
        raise click.BadParameter(str(exc)) from None


state_option = click.option(
    "--state", "states", multiple=True, metavar="STATE", callback=_parse_states,
    help="Only these states (e.g. Failed, or Failed,Retrying); subclasses match too. Repeatable.",
)
def complete_run_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion: the run ids of the ledger (``--db`` if already typed) starting with ``incomplete``."""
    try:
        with open_ledger(ctx.params.get("db")) as store:
            return [r.run_id for r in store.runs() if r.run_id.startswith(incomplete)] + (
                ["latest"] if "latest".startswith(incomplete) else [])
    except Exception:  # completing must never print an error into the user's command line
        return []


def run_argument(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``RUN_ID``: a run id, a unique prefix of one, or ``latest``."""
    return click.argument("run_id", metavar="RUN_ID", shell_complete=complete_run_ids)(fn)


run_option = click.option(
    "--run", "run_id", metavar="RUN_ID", shell_complete=complete_run_ids,
    help="Only this run (an id, a unique prefix, or latest).")
flow_option = click.option("--flow", metavar="NAME", help="Only runs of this flow.")
task_option = click.option("--task", metavar="NAME", help="Only this task (name or key).")
kind_option = click.option(
    "--kind", type=click.Choice(["task", "flow"]), help="Only task or only flow transitions."
)


_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(value: str) -> datetime.datetime:
    """An ISO date/time (naive means UTC) or an age like ``30m``, ``2h``, ``7d``."""
    match = _AGO.match(value.strip())
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    when = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def _when_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime.datetime | None:
    if value is None:
        return None
    try:
        return parse_when(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an ISO time (2024-06-01T09:00) nor an age (30m, 2h, 7d)"
        ) from None


def time_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    until = click.option(
        "--until", metavar="WHEN", callback=_when_callback, help="Up to this time (ISO, or an age)."
    )
    since = click.option(
        "--since", metavar="WHEN", callback=_when_callback,
        help="From this time: ISO (2024-06-01T09:00) or an age (2h, 7d).",
    )
    return since(until(fn))


# --- opening the ledger --------------------------------------------------------


def ledger_path(db: str | None) -> str:
    """``--db``, else the library's default (``STATELEDGER_DB``, else ``~/.stateledger/ledger.db``)."""
    if db:
        return db
    return str(default_path())


def shown_path(db: str | None) -> str:
    """The ledger as messages print it: a URL's password is shown as ``***``."""
    return without_password(ledger_path(db))


@contextlib.contextmanager
def open_ledger(db: str | None, *, create: bool = False, write: bool = False, live: bool = False) -> Iterator[Any]:
    """The EventStore at ``--db``; a read command (``create=False``) never creates or changes a ledger.

    A file that does not exist, or a PostgreSQL schema that holds no ledger, is
    refused. A read command opens a SQLite ledger read-only (``immutable`` when
    no writer is live), so an archived copy, a read-only file or folder, or
    another user's ledger can be read and is never changed; ``live`` (follow)
    opens it read-only only when it cannot be written, to see new commits.
    ``write`` (mark, restart): the ledger must exist and is opened to write.
    """
    path = ledger_path(db)
    if is_url(path):
        with EventStore(recorder=open_recorder(path, create=create)) as store:
            yield store
        return
    file = path[len("sqlite://"):] if path.startswith("sqlite://") else path
    local = "://" not in file and file != ":memory:"
    if not create and local and (not os.path.exists(file) or os.path.getsize(file) == 0):
        state = "does not exist" if not os.path.exists(file) else "is empty"
        raise LedgerError(
            f"No ledger at {path}: the file {state}. Pass the ledger with --db PATH "
            "(or set STATELEDGER_DB), or record a run first with: stateledger run FILE.py",
            path,
        )
    if not create and not write and local and (not live or not _writable(file)):
        from ..sqlite import SQLiteRecorder

        store = EventStore(recorder=SQLiteRecorder(os.path.abspath(file), read_only=True))
    else:
        store = EventStore(path)
    with store:
        yield store


def _writable(file: str) -> bool:
    """Whether this process may write the ledger file and its folder (mode bits count, even for root)."""
    for path in (file, os.path.dirname(os.path.abspath(file))):
        try:
            if not (os.access(path, os.W_OK) and os.stat(path).st_mode & 0o222):
                return False
        except OSError:
            return False
    return True


def resolve_run(store: Any, text: str) -> str:
    """The run id ``text`` names: itself, ``latest`` (the newest run), or the one run it is a prefix of."""
    if text == "latest":
        newest = store.runs(limit=1)
        if not newest:
            raise LedgerError(f"No run in ledger {store.path} yet, so none is the latest.", store.path)
        return str(newest[0].run_id)
    known = [r.run_id for r in store.runs()]
    if text in known:
        return text
    matches = [r for r in known if r.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more" if len(matches) > 5 else "")
        raise CommandInputError(f"{text!r} is the start of {len(matches)} run ids ({shown}); type more of it",
                                "run_id", text)
    store.run(text)  # raises RunNotFoundError naming recent runs
    return text
