"""The ``stateledger`` commands: run flows and read the ledger from a terminal.

A thin layer over the library: each command calls one public function
(``Flow.run``, ``EventStore.runs``/``history``/``replay``/``events``/
``export``/``tail``, ``graph.mermaid``); ``verify``, ``checkpoint`` and
``keygen`` are in ``eventstore.cli.trust``. Shared options are shared
decorators; every library error becomes one line on stderr, exit 2, in
``main``. Exit codes: 0 ok, 1 the flow failed or verification failed, 2 a
usage or input error. Read commands never create or modify a ledger. Output
piped into a reader that stops early (``| head``) ends quietly with exit 0
(``pipes``). ``restart`` and ``mark`` are in ``manual.py``.

The engine and the graph are imported inside the commands that need them, and
SQLite only when a ledger is opened, so ``stateledger runs`` starts quickly.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from typing import Any, Sequence

import click

from statemachine.errors import StateLedgerError
from statemachine.masking import mask

from . import format as out
from .loading import load_flow, load_handler, parse_params
from .options import (
    complete_run_ids, db_option, flow_option, json_option, kind_option, limit_option, open_ledger, resolve_run,
    run_argument, run_option, shown_path, state_option, task_option, time_options, traceback_option,
    failure_traceback_option,
)
from .pipes import SafeWriter, flush_quietly, silence_stdout

__all__ = ["main", "cli", "StateLedgerGroup"]


# --- the commands --------------------------------------------------------------


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class StateLedgerGroup(click.Group):
    """The command group; its ``main`` is the one place errors become exit codes."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Run a command: exit 0/1 as it says, 2 with one line on stderr for a usage or library error."""
        extra.setdefault("color", False if os.environ.get("NO_COLOR") else None)  # https://no-color.org
        try:
            code = super().main(args, prog_name or "stateledger", complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.format_message(), err=True)
            code = 2
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "stateledger"
            code = _fail(f"{exc.format_message()} (see: {command} --help)")
        except click.ClickException as exc:
            code = _fail(exc.format_message())
        except click.Abort:
            code = 130
        except BrokenPipeError:  # the reader of our output went away (| head): a quiet end
            silence_stdout()
            code = 0
        except StateLedgerError as exc:
            _print_cause(exc)
            code = _fail(str(exc))
        except OSError as exc:  # e.g. export -o into a missing folder (click itself handles EPIPE)
            code = _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        code = code if isinstance(code, int) else 0
        flush_quietly()  # a reader gone by now (| head) is no error either
        if standalone_mode:
            sys.exit(code)
        return code


def _fail(message: str) -> int:
    click.echo(f"stateledger: error: {mask(message)}", err=True)
    return 2


executor_option = click.option(
    "--executor", "executor_spec", default="local", show_default=True, metavar="SPEC",
    help="Where task bodies run: local, threads[:N], dask (a local cluster) or dask:tcp://HOST:PORT.",
)

#: Set by a command whose --traceback was given: print the cause of a flow file's error in full.
_TRACEBACK: list[bool] = []


def _print_cause(exc: BaseException) -> None:
    if _TRACEBACK and exc.__cause__ is not None:
        import traceback

        click.echo("".join(traceback.format_exception(exc.__cause__)).rstrip(), err=True)


def want_traceback(show: bool) -> None:
    """Remember ``--traceback`` for the error printer in ``main``."""
    if show:
        _TRACEBACK.append(True)


def run_flow(flow: Any, parameters: Any, store: Any, label: str, as_json: bool, header: list[str],
             **how: Any) -> Any:
    """Run ``flow`` printing each committed transition; a closed pipe stops the printing, never the run.

    With ``--json`` what tasks print goes to stderr, so stdout is JSON only.
    """
    stdout = SafeWriter(sys.stdout)
    echo = out.json_line if as_json else out.transition_line

    def show(event: Any) -> None:
        while header:  # printed with the first transition: a refused parameter prints nothing
            click.echo(mask(header.pop()), file=stdout)
        click.echo(mask(echo(event)), file=stdout)  # live states: not yet masked by the ledger

    tasks_print_to = SafeWriter(sys.stderr) if as_json else stdout
    started = time.perf_counter()
    with contextlib.redirect_stdout(tasks_print_to):  # type: ignore[type-var]
        try:
            state = flow.run(parameters, store=out.PrintingLedger(store, show), **how)
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C (exit 130) or SIGTERM (143): the run ended Cancelled
            click.echo(f"\nRun {label} was interrupted; it ended Cancelled. See: stateledger show {label}", err=True)
            raise
    click.echo(mask(out.run_summary(flow, state, label, time.perf_counter() - started, as_json)), file=stdout)
    return state


@click.group(cls=StateLedgerGroup, context_settings=CONTEXT)
@click.version_option(package_name="stateledger", prog_name="stateledger")
def main() -> None:
    """Run flows and replay, audit and verify their runs from the ledger.

    \b
    Examples:
      stateledger run examples/etl.py --param day=2024-06-01
      stateledger runs --state Failed --since 1d
      stateledger show RUN_ID
    """


@main.command()
@click.argument("target", metavar="FILE[:FLOW]")
@click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE",
    help="A flow parameter (VALUE as JSON when valid JSON). Repeatable.",
)
@click.option("--run-id", metavar="ID", help="Name the run (default: FLOW-TIME-RANDOM).")
@executor_option
@db_option
@json_option
@traceback_option
def run(target: str, params: tuple[str, ...], run_id: str | None, executor_spec: str, db: str | None,
        as_json: bool, show_traceback: bool) -> int:
    """Run the flow in FILE, printing each transition as it commits.

    FLOW names the module variable holding the flow, or the flow's name; it
    may be left out when FILE holds one flow. Exits 0 when the flow
    succeeded, 1 when it did not. Times are UTC. With --json, stdout is JSON
    lines only (what tasks print goes to stderr).

    \b
    Example:
      stateledger run examples/etl.py --param day=2024-06-01 --run-id etl-june
      stateledger run examples/etl.py --executor threads:8
    """
    from statemachine.engine import new_run_id
    from statemachine.executors import executor_from_spec

    want_traceback(show_traceback)
    executor = executor_from_spec(executor_spec)
    flow = load_flow(target)
    parameters = flow.check_parameters(parse_params(params))  # before the ledger is opened
    run_id = run_id or new_run_id(flow.name)
    header = [] if as_json else [
        out.printable(f"Running flow {flow.name} as run {run_id} (ledger {shown_path(db)}; times UTC)")]
    with open_ledger(db, create=True) as store:
        state = run_flow(flow, parameters, store, run_id, as_json, header, run_id=run_id, executor=executor)
    return 0 if state.is_successful() else 1


@main.command()
@flow_option
@state_option
@time_options
@limit_option(20, "runs")
@db_option
@json_option
def runs(
    flow: str | None, states: Any, since: Any, until: Any, limit: int, db: str | None, as_json: bool
) -> int:
    """List the runs in the ledger, newest first.

    --since/--until compare with the time a run started. A run whose writer
    is gone (killed) shows as orphaned until `stateledger reap` closes it.

    \b
    Example:
      stateledger runs --flow etl --state Failed --since 7d
    """
    with open_ledger(db) as store:
        rows = store.runs(flow=flow, states=states, since=since, until=until)
        shown = rows[:limit] if limit else rows
        orphaned = {o.run_id for o in store.orphans()} if any(r.ended is None for r in shown) else set()
    click.echo(out.runs_json(shown, orphaned) if as_json else out.runs_table(shown, orphaned))
    _footer(out.more_footer(len(shown), len(rows), "run"), as_json)
    return 0


def _footer(text: str | None, as_json: bool) -> None:
    """The "N more" line, on stderr: stdout stays the table (or pure JSON) for scripts."""
    if text is not None:
        click.echo(text, err=True)


@main.command()
@run_argument
@state_option
@failure_traceback_option
@db_option
@json_option
def show(run_id: str, states: Any, tracebacks: bool, db: str | None, as_json: bool) -> int:
    """Show a run: per task, its transitions with times (UTC) and durations.

    RUN_ID may be a unique prefix of a run id, or latest. Transitions a state
    handler rewrote are marked with the handler's name and the state it
    replaced; manual marks with who marked them and why. --state shows only
    the tasks whose last state is one of these; --traceback prints, under
    each failure, where it failed.

    \b
    Example:
      stateledger show etl-20240601T090000-a1b2c3
      stateledger show latest --state Failed
    """
    with open_ledger(db) as store:
        events = store.history(resolve_run(store, run_id))
    only = (lambda state: isinstance(state, states)) if states else None
    if as_json:
        click.echo(out.show_json(events if only is None else [e for e in events if _last_matches(events, e, only)]))
    else:
        click.echo(out.show_text(events, only, tracebacks=tracebacks))
    return 0


def _last_matches(events: Any, event: Any, only: Any) -> bool:
    last = [e for e in events if (e.kind, e.key) == (event.kind, event.key)][-1]
    return bool(only(last.new_state))


@main.command()
@run_argument
@click.option(
    "--handler", "handlers", multiple=True, metavar="MODULE:FUNCTION",
    help="A state handler to call with each past transition. Repeatable.",
)
@task_option
@kind_option
@state_option
@db_option
@json_option
def replay(run_id: str, handlers: tuple[str, ...], task: str | None, kind: str | None, states: Any,
           db: str | None, as_json: bool) -> int:
    """Replay a past run: feed its transitions to state handlers, run no task.

    Each handler is called as handler(stand_in, old_state, new_state), the
    stand-in named like the original task or flow; it can try a new notifier
    on last night's run. Nothing is written to the ledger. Exits 1 when a
    handler raised.

    \b
    Example:
      stateledger replay etl-20240601T090000-a1b2c3 --handler mynotify:alert
    """
    loaded = [load_handler(spec) for spec in handlers]
    observer = out.ReplayPrinter(as_json)
    with open_ledger(db) as store:
        run_id = resolve_run(store, run_id)
        fed = store.replay(run_id, observer.listener, handlers=[observer.watch(h) for h in loaded],
                           task=task, kinds=kind, states=states)
    observer.finish(run_id, fed)
    return 1 if observer.failures else 0


@main.command()
@run_option
@kind_option
@click.option("--key", metavar="KEY", help="Only this task key (e.g. load-1) or flow name.")
@click.option("--name", metavar="NAME", help="Only tasks (or flows) with this name.")
@state_option
@time_options
@click.option("--rewritten", is_flag=True, help="Only transitions a state handler rewrote.")
@click.option("--manual", is_flag=True, help="Only manual marks (stateledger mark), with who and why.")
@limit_option(50, "transitions")
@failure_traceback_option
@db_option
@json_option
def audit(run_id: str | None, kind: str | None, key: str | None, name: str | None, states: Any, since: Any, until: Any,
          rewritten: bool, manual: bool, limit: int, tracebacks: bool, db: str | None, as_json: bool) -> int:
    """Search the committed transitions of every run: the newest N, oldest first. Times are UTC.

    \b
    Example:
      stateledger audit --rewritten --since 1d
      stateledger audit --run etl-20240601T090000-a1b2c3 --kind task --state Failed
      stateledger audit --manual
    """
    filters = dict(kind=kind, key=key, name=name, states=states, since=since, until=until,
                   rewritten=True if rewritten else None)
    with open_ledger(db) as store:
        if run_id is not None:
            run_id = resolve_run(store, run_id)  # an unknown run id is an error, not an empty answer
        events = store.events(run_id, **filters, limit=limit or None, newest=True, manual=manual or None)
        total = len(events)
        if limit and len(events) == limit:
            total = (len(store.events(run_id, **filters, manual=True)) if manual
                     else store.count(run_id, **filters))
    if as_json:
        click.echo(out.events_json(events))
    else:
        click.echo(out.marks_table(events) if manual else out.audit_table(events, tracebacks=tracebacks))
    _footer(out.more_footer(len(events), total, "manual mark" if manual else "transition"), as_json)
    return 0


@main.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@run_option
@click.option("-o", "--output", metavar="FILE", default="-", help="Write here instead of to stdout.")
@db_option
def export(fmt: str, run_id: str | None, output: str, db: str | None) -> int:
    """Export events as JSON lines (re-importable) or CSV.

    \b
    Example:
      stateledger export --run etl-20240601T090000-a1b2c3 -o etl.jsonl
      stateledger export --format csv > ledger.csv
    """
    with open_ledger(db) as store:
        if run_id is not None:
            run_id = resolve_run(store, run_id)
        if output == "-":
            store.export(sys.stdout, format=fmt, run_id=run_id)
            sys.stdout.flush()
        else:
            store.export(output, format=fmt, run_id=run_id)
    return 0


@main.command()
@run_option
@flow_option
@task_option
@kind_option
@state_option
@click.option("--from-start", is_flag=True, help="Print the transitions already in the ledger first.")
@click.option(
    "--interval", type=click.FloatRange(min=0.01), default=0.25, show_default=True,
    help="Seconds between polls (a PostgreSQL ledger wakes on each commit instead).",
)
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Stop after this many transitions.")
@db_option
@json_option
def follow(run_id: str | None, flow: str | None, task: str | None, kind: str | None, states: Any, from_start: bool,
           interval: float, count: int | None, db: str | None, as_json: bool) -> int:
    """Print transitions as other processes commit them, until interrupted.

    \b
    Example:
      stateledger follow --flow etl --state Failed,Retrying
    """
    show = out.json_line if as_json else functools.partial(out.transition_line, with_run=True)
    try:
        with open_ledger(db, live=True) as store:
            cursor = 0 if from_start else store.max_seq()
            if run_id is not None:
                run_id = _follow_run(store, run_id)
            click.echo(f"Following {shown_path(db)} after seq {cursor} (times UTC); press Ctrl-C to stop",
                       err=True)
            events = store.tail(cursor, run_id=run_id, flow=flow, task=task, states=states, kinds=kind,
                                poll_interval=interval)
            for seen, event in enumerate(events, 1):
                click.echo(show(event))
                if count is not None and seen >= count:
                    events.close()
                    return 0
    except KeyboardInterrupt:  # the normal way to stop following
        return 0


def _follow_run(store: Any, run_id: str) -> str:
    """The run ``--run`` names; one not in the ledger yet is said so on stderr, then waited for."""
    from statemachine.errors import LedgerError

    try:
        return resolve_run(store, run_id)
    except LedgerError:  # RunNotFoundError, or no run at all yet
        recent = [r.run_id for r in store.runs(limit=3)]
        known = f" (recent runs: {', '.join(recent)})" if recent else " (it holds no run yet)"
        click.echo(f"stateledger: note: no run {run_id!r} in ledger {store.path}{known}; waiting for it "
                   "to start. Check the id, or press Ctrl-C to stop.", err=True)
        return run_id


@main.command()
@click.option("--from", "source", metavar="PATH|URL", required=True, help="The ledger to copy.")
@click.option("--to", "target", metavar="PATH|URL", required=True, help="The ledger to copy into.")
@click.option("--append", is_flag=True, help="Copy into a ledger that holds runs already (none of the copied ones).")
def copy(source: str, target: str, append: bool) -> int:
    """Copy every run of one ledger into another: SQLite <-> PostgreSQL.

    Events keep their hashes (verify passes on the copy); seqs are the
    target's. A target that holds events is refused unless --append is
    given, and then no run may be in both.

    \b
    Example:
      stateledger copy --from ledger.db --to postgresql://me@db.example/ledger
    """
    with open_ledger(source) as src, open_ledger(target, create=True) as dst:
        events = src.copy_to(dst, append=append)
        runs = len(src.runs())
    click.echo(f"Copied {events} events of {runs} runs from {shown_path(source)} to {shown_path(target)}")
    return 0


@main.command()
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@click.option("--manual", is_flag=True, help="Also the edges only a mark or a restart may take, labelled.")
@click.option("--db", metavar="PATH", hidden=True, help="Accepted for uniformity; the graph reads no ledger.")
def graph(fmt: str, manual: bool, db: str | None) -> int:
    """Print the legal state graph (Mermaid, or Graphviz DOT).

    --manual adds the manual edges (a mark: any state to a finished one) and
    the restart edges (a finished state back to a pending one).

    \b
    Example:
      stateledger graph > states.mmd
      stateledger graph --manual --format dot | dot -Tsvg > states.svg
    """
    from statemachine import graph as legal

    click.echo(legal.mermaid(manual=manual) if fmt == "mermaid" else legal.dot(manual=manual), nl=False)
    return 0


@main.command()
@run_argument
@click.option("-o", "--output", metavar="FILE", default="-", help="Write the page here instead of to stdout.")
@click.option("--flow", "target", metavar="FILE[:FLOW]", help="The run's flow file, to draw its task graph.")
@db_option
@traceback_option
def report(run_id: str, output: str, target: str | None, db: str | None, show_traceback: bool) -> int:
    """Write one run as a self-contained HTML page: timeline, task graph, events, verify status.

    \b
    Example:
      stateledger report etl-20240601T090000-a1b2c3 -o run.html
      stateledger report RUN_ID --flow examples/etl.py -o run.html
    """
    from eventstore.report import write_report

    want_traceback(show_traceback)
    flow = load_flow(target) if target else None
    with open_ledger(db) as store:
        write_report(store, resolve_run(store, run_id), output, flow=flow)
    return 0


#: ``stateledger``'s command group (also the console script's entry point).
cli = main
