"""``stateledger``: run flows and read the ledger from a terminal.

A thin layer over the library: each command calls one public function
(``Flow.run``, ``EventStore.runs``/``history``/``replay``/``events``/
``verify``/``export``, ``graph.mermaid``). Shared options are shared
decorators; every library error becomes one line on stderr, exit 2, in
``main``. Exit codes: 0 ok, 1 the flow failed or verification failed, 2 a
usage or input error. Read commands never create or modify a ledger.

Heavy imports (the ledger, the bus, the graph) happen inside the commands so
``stateledger graph`` and ``stateledger runs`` start quickly.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import importlib
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import click

from . import cli_format as out
from .errors import CommandInputError, LedgerError, StateLedgerError
from .masking import mask
from .states import STATE_CLASSES, State

__all__ = ["main", "cli", "StateLedgerGroup", "CommandInputError", "load_flow", "parse_params", "load_handler"]


# --- shared options (decorators) -------------------------------------------------


db_option = click.option(
    "--db", metavar="PATH", default=None,
    help="Ledger file. Default: $STATELEDGER_DB, else ~/.stateledger/ledger.db.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _parse_states(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> tuple[type[State], ...] | None:
    """``--state Failed --state retrying,success`` -> state classes (subclasses match too)."""
    by_name = {name.lower(): cls for name, cls in STATE_CLASSES.items()}
    classes = []
    for value in values:
        for name in filter(None, (v.strip() for v in value.split(","))):
            if name.lower() not in by_name:
                raise click.BadParameter(f"unknown state {name!r}; choose from {', '.join(STATE_CLASSES)}")
            classes.append(by_name[name.lower()])
    return tuple(classes) or None


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
    from eventstore.store import default_path

    return str(default_path())


@contextlib.contextmanager
def open_ledger(db: str | None, *, create: bool = False) -> Iterator[Any]:
    """The EventStore at ``--db``; a read command (``create=False``) never creates the file."""
    from eventstore import EventStore

    path = ledger_path(db)
    if not create and path != ":memory:" and (not os.path.exists(path) or os.path.getsize(path) == 0):
        state = "does not exist" if not os.path.exists(path) else "is empty"
        raise LedgerError(
            f"No ledger at {path}: the file {state}. Pass the ledger with --db PATH "
            "(or set STATELEDGER_DB), or record a run first with: stateledger run FILE.py",
            path,
        )
    with EventStore(path) as store:
        yield store


# --- loading user code ---------------------------------------------------------


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``["day=2024-06-01", "limit=10"]`` -> ``{"day": "2024-06-01", "limit": 10}`` (JSON when valid)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CommandInputError(
                f"--param {pair!r} is not KEY=VALUE; write it like --param day=2024-06-01 or --param limit=10"
            )
        try:
            params[key.strip()] = json.loads(raw)
        except ValueError:
            params[key.strip()] = raw
    return params


def load_flow(target: str) -> Any:
    """The flow in ``FILE[:FLOW]``: the only one, or the one FLOW names (variable or flow name)."""
    from .flow import Flow

    path, name = _split_target(target)
    module = _import_file(path)
    flows = {var: obj for var, obj in vars(module).items() if isinstance(obj, Flow)}
    if name is not None:
        if name in flows:
            return flows[name]
        named = [f for f in flows.values() if f.name == name]
        if len(set(map(id, named))) == 1:
            return named[0]
        found = ", ".join(sorted(flows)) or "none"
        raise CommandInputError(
            f"{path} has no flow named {name!r} (module variables holding a flow: {found})"
        )
    unique = list({id(f): f for f in flows.values()}.values())
    if not unique:
        raise CommandInputError(
            f"{path} defines no flow: create one at module level, e.g. `with Flow(\"etl\") as flow: ...`"
        )
    if len(unique) > 1:
        choices = ", ".join(f"{path}:{var}" for var in sorted(flows))
        raise CommandInputError(f"{path} defines {len(unique)} flows; name the one to run: {choices}")
    return unique[0]


def _split_target(target: str) -> tuple[str, str | None]:
    path, sep, name = target.rpartition(":")
    if sep and path and name and not os.path.exists(target):
        return path, name
    return target, None


def _import_file(path: str) -> Any:
    """Import ``path`` as a module named after the file (so handler names read ``etl.notify``)."""
    file = Path(path)
    if not file.is_file():
        raise CommandInputError(
            f"Flow file {path} does not exist (expected a Python file, e.g. examples/etl.py)"
        )
    name = re.sub(r"\W", "_", file.stem) or "flowfile"
    if name in sys.modules:  # never shadow a module already imported (a flow file named json.py)
        name = f"stateledger_flow_{name}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CommandInputError(f"Flow file {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(file.resolve().parent))  # its sibling modules import as in `python FILE`
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise CommandInputError(f"Flow file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def load_handler(spec: str) -> Callable[..., Any]:
    """``module:function`` -> the function (the current directory is importable)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CommandInputError(f"--handler {spec!r} is not module:function, e.g. --handler mynotify:alert")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandInputError(f"--handler {spec}: cannot import module {module_name!r} ({exc})") from exc
    except Exception as exc:
        raise CommandInputError(
            f"--handler {spec}: module {module_name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise CommandInputError(f"--handler {spec}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise CommandInputError(f"--handler {spec}: {attr!r} is a {type(target).__name__}, not a function")
    return target


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
        except StateLedgerError as exc:
            code = _fail(str(exc))
        except OSError as exc:  # e.g. export -o into a missing folder (click itself handles EPIPE)
            code = _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _fail(message: str) -> int:
    click.echo(f"stateledger: error: {mask(message)}", err=True)
    return 2


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
@db_option
@json_option
def run(target: str, params: tuple[str, ...], run_id: str | None, db: str | None, as_json: bool) -> int:
    """Run the flow in FILE, printing each transition as it commits.

    FLOW names the module variable holding the flow, or the flow's name; it
    may be left out when FILE holds one flow. Exits 0 when the flow
    succeeded, 1 when it did not.

    \b
    Example:
      stateledger run examples/etl.py --param day=2024-06-01 --run-id etl-june
    """
    from subscribers import subscribe

    from .engine import new_run_id

    flow = load_flow(target)
    parameters = flow.check_parameters(parse_params(params))  # before the ledger is opened
    run_id = run_id or new_run_id(flow.name)
    echo = out.json_line if as_json else out.transition_line

    header = [] if as_json else [
        out.printable(f"Running flow {flow.name} as run {run_id} (ledger {ledger_path(db)})")]

    def show(event: Any) -> None:
        if event.run_id == run_id:
            while header:  # printed with the first transition: a refused parameter prints nothing
                click.echo(mask(header.pop()))
            click.echo(mask(echo(event)))  # live states: not yet masked by the ledger

    with open_ledger(db, create=True) as store:
        handle = subscribe(show)
        try:
            started = time.perf_counter()
            state = flow.run(parameters, store=store, run_id=run_id)
        finally:
            handle.disconnect()
        click.echo(mask(out.run_summary(flow, state, run_id, time.perf_counter() - started, as_json)))
    return 0 if state.is_successful() else 1


@main.command()
@flow_option
@state_option
@time_options
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most this many runs (the newest).")
@db_option
@json_option
def runs(
    flow: str | None, states: Any, since: Any, until: Any, limit: int | None, db: str | None, as_json: bool
) -> int:
    """List the runs in the ledger, newest first.

    --since/--until compare with the time a run started.

    \b
    Example:
      stateledger runs --flow etl --state Failed --since 7d
    """
    with open_ledger(db) as store:
        found = store.runs(flow=flow, states=states, limit=None if since or until else limit)
    rows = out.filter_runs(found, since, until, limit)
    click.echo(out.runs_json(rows) if as_json else out.runs_table(rows))
    return 0


@main.command()
@click.argument("run_id")
@db_option
@json_option
def show(run_id: str, db: str | None, as_json: bool) -> int:
    """Show a run: per task, its transitions with times and durations.

    Transitions a state handler rewrote are marked with the handler's name
    and the state it replaced.

    \b
    Example:
      stateledger show etl-20240601T090000-a1b2c3
    """
    with open_ledger(db) as store:
        events = store.history(run_id)
    click.echo(out.show_json(events) if as_json else out.show_text(events))
    return 0


@main.command()
@click.argument("run_id")
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
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most this many events.")
@db_option
@json_option
def audit(run_id: str | None, kind: str | None, key: str | None, name: str | None, states: Any, since: Any,
          until: Any, rewritten: bool, limit: int | None, db: str | None, as_json: bool) -> int:
    """Search the committed transitions of every run (oldest first).

    \b
    Example:
      stateledger audit --rewritten --since 1d
      stateledger audit --run etl-20240601T090000-a1b2c3 --kind task --state Failed
    """
    with open_ledger(db) as store:
        events = store.events(
            run_id, kind=kind, key=key, name=name, states=states, since=since, until=until,
            rewritten=True if rewritten else None, limit=limit,
        )
        if run_id is not None and not events:
            store.run(run_id)  # an unknown run id is an error, not an empty answer
    click.echo(out.events_json(events) if as_json else out.audit_table(events))
    return 0


@main.command()
@click.argument("run_id", required=False)
@db_option
@json_option
def verify(run_id: str | None, db: str | None, as_json: bool) -> int:
    """Check the ledger's hash chains: exit 1 and list the problems if tampered.

    Without RUN_ID every run is checked.

    \b
    Example:
      stateledger verify && echo intact
    """
    with open_ledger(db) as store:
        report = store.verify(run_id)
    click.echo(out.verify_text(report, ledger_path(db), run_id, as_json))
    return 0 if report.ok else 1


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
        if output == "-":
            store.export(sys.stdout, format=fmt, run_id=run_id)
            sys.stdout.flush()
        else:
            store.export(output, format=fmt, run_id=run_id)
    return 0


_BATCH = 1000  # events read per poll


@main.command()
@run_option
@flow_option
@task_option
@kind_option
@state_option
@click.option("--from-start", is_flag=True, help="Print the transitions already in the ledger first.")
@click.option(
    "--interval", type=click.FloatRange(min=0.01), default=0.25, show_default=True, help="Seconds between polls."
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
    from .filters import EventFilter

    wanted = EventFilter(flow=flow, task=task, states=states, kinds=kind)
    show = out.json_line if as_json else functools.partial(out.transition_line, with_run=True)
    seen = 0
    try:
        with open_ledger(db) as store:
            cursor = 0 if from_start else store.max_seq()
            click.echo(f"Following {ledger_path(db)} after seq {cursor}; press Ctrl-C to stop", err=True)
            while True:
                batch = store.events(run_id, after_seq=cursor, limit=_BATCH)
                for event in batch:
                    cursor = event.seq
                    if wanted.matches(event):
                        click.echo(show(event))
                        seen += 1
                        if count is not None and seen >= count:
                            return 0
                if len(batch) < _BATCH:  # caught up: wait for other processes to commit more
                    time.sleep(interval)
    except KeyboardInterrupt:  # the normal way to stop following
        return 0


@main.command()
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@click.option("--db", metavar="PATH", hidden=True, help="Accepted for uniformity; the graph reads no ledger.")
def graph(fmt: str, db: str | None) -> int:
    """Print the legal state graph (Mermaid, or Graphviz DOT).

    \b
    Example:
      stateledger graph > states.mmd
      stateledger graph --format dot | dot -Tsvg > states.svg
    """
    from . import graph as legal

    click.echo(legal.mermaid() if fmt == "mermaid" else legal.dot(), nl=False)
    return 0


#: ``stateledger``'s command group (also the console script's entry point).
cli = main

if __name__ == "__main__":
    main()
