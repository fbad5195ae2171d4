"""``stateledger restart`` and ``stateledger mark``: a person steps into a run.

``restart RUN_ID FILE[:FLOW]`` calls ``flow.run(restart=RUN_ID)`` (the same
run, its next attempt: tasks that succeeded with a JSON result are not run
again); ``mark RUN_ID KEY STATE --reason ...`` calls ``EventStore.mark`` (a
manual transition through the pipeline, recorded with who and why). Both
print what they commit, as ``run`` does.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

import click

from . import format as out
from .commands import executor_option, main, run_flow, want_traceback
from .loading import load_flow, parse_params
from .options import db_option, json_option, open_ledger, resolve_run, run_argument, shown_path, traceback_option

__all__ = ["restart", "mark"]


@main.command()
@run_argument
@click.argument("target", metavar="FILE[:FLOW]")
@click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE",
    help="A parameter the run did not record (those it did keep their values). Repeatable.",
)
@executor_option
@db_option
@json_option
@traceback_option
def restart(run_id: str, target: str, params: tuple[str, ...], executor_spec: str, db: str | None, as_json: bool,
            show_traceback: bool) -> int:
    """Restart a finished run from where it failed: same run id, next attempt.

    Tasks whose last state is successful with a JSON result are not run
    again (their results feed the tasks downstream); the others and the flow
    go back to Pending/Scheduled, then run as usual. Both attempts are in the
    run's history. Exits 0 when the flow now succeeds, 1 when it does not.

    \b
    Example:
      stateledger restart etl-20240601T090000-a1b2c3 examples/etl.py
      stateledger restart latest examples/etl.py
    """
    from statemachine.executors import executor_from_spec

    want_traceback(show_traceback)
    executor = executor_from_spec(executor_spec)
    flow = load_flow(target)
    with open_ledger(db, write=True) as store:
        run_id = resolve_run(store, run_id)
        header = [] if as_json else [out.printable(
            f"Restarting run {run_id} of flow {flow.name} (ledger {shown_path(db)}; times UTC)")]
        with _restart_log():
            state = run_flow(flow, parse_params(params), store, run_id, as_json, header, restart=run_id,
                             executor=executor)
    return 0 if state.is_successful() else 1


class _RestartNotes(logging.Handler):
    """Prints the restart's own log lines (which tasks run again, and why) on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("restart of run"):
            click.echo(f"stateledger: {message}", err=True)


@contextlib.contextmanager
def _restart_log() -> Iterator[None]:
    """The engine's restart notes reach the terminal (the library configures no logging)."""
    logger, handler = logging.getLogger("stateledger"), _RestartNotes(logging.INFO)
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@main.command()
@run_argument
@click.argument("key")
@click.argument("state")
@click.option("--reason", required=True, metavar="TEXT", help="Why (recorded in the ledger; required).")
@click.option("--by", metavar="NAME", help="Who marks it (default: your OS user name).")
@db_option
@json_option
def mark(run_id: str, key: str, state: str, reason: str, by: str | None, db: str | None, as_json: bool) -> int:
    """Set a task's state by hand (KEY: its key, e.g. load-1, or the flow's name).

    A manual transition through the pipeline: global state handlers see it,
    the graph's manual edges must allow it (any state to a finished one;
    never back to Running or a pending state: exit 2, nothing written), the
    ledger records who (--by) and why (--reason), listeners and durable
    subscriptions hear it. The flow's state is then recomputed from its
    reference tasks.

    \b
    Example:
      stateledger mark etl-20240601T090000-a1b2c3 load-1 Success --reason "loaded by hand from the backup"
      stateledger audit --manual
    """
    with open_ledger(db, write=True) as store:
        run_id = resolve_run(store, run_id)
        before = store.max_seq()
        store.mark(run_id, key, state, reason=reason, by=by)
        for event in _committed(store, run_id, before):
            click.echo(out.json_line(event) if as_json else out.transition_line(event))
    return 0


def _committed(store: Any, run_id: str, after: int) -> Iterator[Any]:
    return iter(store.events(run_id, after_seq=after))
