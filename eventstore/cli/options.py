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

from statemachine.errors import LedgerError
from statemachine.filters import FilterError, parse_states
from statemachine.states import STATE_CLASSES, State

from ..store import EventStore, default_path, is_url, open_recorder, without_password

__all__ = [
    "db_option", "json_option", "state_option", "run_option", "flow_option", "task_option", "kind_option",
    "time_options", "parse_when", "ledger_path", "shown_path", "open_ledger", "traceback_option",
]


# --- shared options (decorators) -------------------------------------------------


db_option = click.option(
    "--db", metavar="PATH|URL", default=None,
    help="Ledger: a file, or postgresql://USER:PASS@HOST:PORT/DB[?schema=NAME]. "
    "Default: $STATELEDGER_DB, else ~/.stateledger/ledger.db.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
traceback_option = click.option(
    "--traceback", "tracebacks", is_flag=True, help="Print where each failed task failed (its stored traceback).")


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
run_option = click.option("--run", "run_id", metavar="RUN_ID", help="Only this run.")
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
def open_ledger(db: str | None, *, create: bool = False) -> Iterator[Any]:
    """The EventStore at ``--db``; a read command (``create=False``) never creates a ledger.

    A file that does not exist, or a PostgreSQL schema that holds no ledger, is refused.
    """
    path = ledger_path(db)
    if is_url(path):
        with EventStore(recorder=open_recorder(path, create=create)) as store:
            yield store
        return
    file = path[len("sqlite://"):] if path.startswith("sqlite://") else path
    if not create and "://" not in file and file != ":memory:" and (
            not os.path.exists(file) or os.path.getsize(file) == 0):
        state = "does not exist" if not os.path.exists(file) else "is empty"
        raise LedgerError(
            f"No ledger at {path}: the file {state}. Pass the ledger with --db PATH "
            "(or set STATELEDGER_DB), or record a run first with: stateledger run FILE.py",
            path,
        )
    with EventStore(path) as store:
        yield store
