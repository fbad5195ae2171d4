"""How ``stateledger`` prints: transition lines, tables, run summaries, JSON.

Pure formatting, kept apart from the commands in ``commands.py`` (plus
``PrintingLedger``, through which ``stateledger run`` prints each commit). Tables are
aligned columns; on a terminal the header is bold and states are coloured.
On a terminal, tables and transition lines fit its width (piped, nothing is
cut, so ``grep`` sees whole lines): run ids and keys are cut
in the middle, and a transition keeps its state and the end of its message,
where the error is, with "…" for what was left out. Times are UTC, and say so.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Collection, Mapping
from typing import Any, Callable, Iterable, Sequence

import click

from statemachine.masking import MASKER, mask
from statemachine.states import State

from ..codec import encode_state
from .fit import cut, more_footer, terminal_width

__all__ = [
    "fmt_time", "fmt_duration", "fmt_state", "event_dict", "json_line", "transition_line",
    "table", "runs_table", "runs_json", "show_text", "show_json",
    "audit_table", "events_json", "verify_text", "run_summary", "ReplayPrinter", "PrintingLedger",
    "terminal_width", "cut", "more_footer", "marks_table", "printable",
]

_COLOURS = (("Failed", "red"), ("Success", "green"), ("Retrying", "yellow"), ("Running", "cyan"),
            ("Paused", "magenta"), ("Cancelled", "magenta"), ("Pending", "blue"))


# --- values ----------------------------------------------------------------------

#: Characters a terminal would act on or hide: C0/C1 controls (newline, ESC), line and
#: paragraph separators, bidirectional overrides and other invisible format marks, lone surrogates.
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with every control or invisible character written as an escape (``\\n``, ``\\x1b``).

    Run ids, names and messages come from users' code: escaped, one run cannot
    forge rows in a table or move the cursor of the terminal that reads it.
    """
    if text.isprintable():
        return text
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def as_datetime(value: Any) -> datetime.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        when = value
    elif isinstance(value, (int, float)):
        when = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    else:
        when = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def fmt_time(value: Any, *, date: bool = True) -> str:
    """UTC ``2024-06-01 09:00:00.123`` (``09:00:00.123`` without the date)."""
    when = as_datetime(value)
    if when is None:
        return "-"
    when = when.astimezone(datetime.timezone.utc)
    text = when.strftime("%Y-%m-%d %H:%M:%S.%f" if date else "%H:%M:%S.%f")
    return text[:-3]


def fmt_duration(seconds: float | None) -> str:
    """``850us``, ``12ms``, ``1.25s``, ``2m03s``, ``1h02m``."""
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def between(a: Any, b: Any) -> float | None:
    start, end = as_datetime(a), as_datetime(b)
    return None if start is None or end is None else (end - start).total_seconds()


def state_name(state: Any) -> str:
    if state is None:
        return "-"
    return type(state).__name__ if isinstance(state, State) else printable(str(state))


def fmt_state(state: Any) -> str:
    """The documented form, ``Success("Task run succeeded.")``; names stay as they are."""
    if state is None:
        return "-"
    return printable(repr(state) if isinstance(state, State) else str(state))


def colour(text: str, state: Any) -> str:
    name = state_name(state)
    for prefix, col in _COLOURS:
        if prefix in name:
            return click.style(text, fg=col)
    return text


def jsonable(value: Any) -> Any:
    """A JSON-able form; anything else becomes its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, State):
        return state_dict(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return repr(value)


def state_dict(state: State | None) -> dict[str, Any] | None:
    """A state as the ledger's codec writes it (so ``--json`` matches ``export``)."""
    if state is None:
        return None
    return encode_state(state, MASKER)  # masked as data: a live state's JSON holds no secret


def event_dict(event: Any) -> dict[str, Any]:
    """One event as JSON-able data (states as ``{"type", "message", "result", ...}``)."""
    return {
        "seq": event.seq, "event_id": event.event_id, "run_id": event.run_id, "flow": event.flow,
        "timestamp": jsonable(event.timestamp), "kind": event.kind, "name": event.name, "key": event.key,
        "attempt": event.attempt, "state": type(event.new_state).__name__,
        "old_state": state_dict(event.old_state), "new_state": state_dict(event.new_state),
        "proposed_state": state_dict(event.proposed_state), "rewritten_by": list(event.rewritten_by),
        "actor": event.actor, "reason": event.reason, "prev_hash": event.prev_hash, "hash": event.hash,
    }


def json_line(event: Any) -> str:
    return json.dumps(event_dict(event))


# --- transitions -----------------------------------------------------------------


def transition_text(event: Any, room: int | None = None) -> str:
    """``Running -> Failed("...")`` with the new state coloured; cut to ``room`` characters if given."""
    plain = f"{state_name(event.old_state)} -> {fmt_state(event.new_state)}"
    if room is not None and len(plain) > room:
        return colour(cut(plain, room, "message"), event.new_state)
    return f"{state_name(event.old_state)} -> " + colour(fmt_state(event.new_state), event.new_state)


def rewrite_note(event: Any) -> str:
    """``rewritten by mod.fn (proposed Failed("..."))``, or "" when no handler rewrote it."""
    if not event.rewritten_by:
        return ""
    proposed = f" (proposed {fmt_state(event.proposed_state)})" if event.proposed_state is not None else ""
    return f"rewritten by {printable(', '.join(event.rewritten_by))}{proposed}"


def transition_line(event: Any, *, with_run: bool = False) -> str:
    """One line per committed transition: time, [run,] kind, key, attempt, move, rewrite."""
    who = f"{event.kind:<4}  {printable(event.key)}"
    if event.kind == "task" and event.attempt and event.attempt > 1:
        who += f" (attempt {event.attempt})"
    parts = [fmt_time(event.timestamp, date=False)]
    if with_run:
        parts.append(printable(event.run_id))
    note = rewrite_note(event)
    note = f"  [{note}]" if note else ""
    if event.reason is not None:
        note += f"  [marked by {printable(event.actor or '-')}]"
    width = terminal_width()
    head = "  ".join([*parts, f"{who:<24}"]) + "  "
    room = None if width is None else max(width - len(head) - len(note), 20)
    if room is not None and note and len(head) + room + len(note) > width:  # type: ignore[operator]
        note = cut(note, max(width - len(head) - room, 8), "end")  # type: ignore[operator]
    return head + transition_text(event, room) + note


# --- tables ----------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], colours: Sequence[int] = (),
          cuts: Mapping[int, tuple[int, str]] | None = None) -> str:
    """Aligned columns fitting ``terminal_width()``; cells of ``colours`` are (text, state) pairs.

    ``cuts``: column -> (narrowest width, how to ``cut`` it); the columns shrink
    in that order until the table fits (the others are never cut).
    """
    rows = [list(r) for r in rows]
    plain = [[printable(c[0] if i in colours else str(c)) for i, c in enumerate(r)] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in plain]) for i, h in enumerate(headers)]
    limit = terminal_width()
    how: dict[int, str] = {}
    if limit is not None and cuts:
        excess = sum(widths) + 2 * (len(widths) - 1) - limit
        for i, (narrowest, style) in cuts.items():
            if excess <= 0:
                break
            take = min(max(widths[i] - max(narrowest, len(headers[i])), 0), excess)
            widths[i] -= take
            excess -= take
            how[i] = style
    lines = [click.style("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), bold=True)]
    for row, texts in zip(rows, plain):
        cells = []
        for i, text in enumerate(texts):
            if i in how:
                text = cut(text, widths[i], how[i])
            padded = text if i == len(texts) - 1 else text.ljust(widths[i])
            cells.append(colour(padded, row[i][1]) if i in colours else padded)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def runs_table(rows: Sequence[Any], orphaned: Collection[str] = ()) -> str:
    """The runs; one whose writer is gone reads ``Running (orphaned)``."""
    if not rows:
        return "No runs match."
    return table(
        ["RUN ID", "FLOW", "STATE", "STARTED (UTC)", "TOOK", "EVENTS"],
        [
            [r.run_id, r.flow, (state_name(r.state) + (" (orphaned)" if r.run_id in orphaned else ""), r.state),
             fmt_time(r.started), fmt_duration(between(r.started, r.ended)),
             str(r.events)]
            for r in rows
        ],
        colours=(2,), cuts={0: (12, "middle"), 1: (8, "end")},
    )


def runs_json(rows: Sequence[Any], orphaned: Collection[str] = ()) -> str:
    return json.dumps([
        {"run_id": r.run_id, "flow": r.flow,
         "state": jsonable(r.state), "started": jsonable(r.started),
         "ended": jsonable(r.ended), "events": r.events, "orphaned": r.run_id in orphaned}
        for r in rows
    ], indent=2)


def audit_table(events: Sequence[Any], *, tracebacks: bool = False) -> str:
    """One row per transition; on a narrow terminal the time loses its date and long cells are cut.

    ``tracebacks``: then, for each failure with one, where it failed.
    """
    if not events:
        return "No transitions match."
    if tracebacks:
        notes = [f"\nseq {e.seq} ({printable(e.run_id)} {printable(e.key)}) failed here:\n" + _indented(e.traceback)
                 for e in events if e.traceback]
        return audit_table(events) + "".join(notes)
    rows = [
        [str(e.seq), fmt_time(e.timestamp), e.run_id, e.key, str(e.attempt),
         (f"{state_name(e.old_state)} -> {fmt_state(e.new_state)}"
          + (f"  [rewritten by {printable(', '.join(e.rewritten_by))}]" if e.rewritten_by else ""), e.new_state)]
        for e in events
    ]
    limit = terminal_width()
    if limit is not None and sum(max(len(r[i]) if i != 5 else len(r[i][0]) for r in rows) + 2
                                 for i in range(6)) > limit:
        for r, e in zip(rows, events):
            r[1] = fmt_time(e.timestamp, date=False)
    return table(["SEQ", "TIME (UTC)", "RUN", "KEY", "TRY", "TRANSITION"], rows, colours=(5,),
                 cuts={2: (12, "middle"), 3: (10, "middle"), 5: (24, "message")})


def marks_table(events: Sequence[Any]) -> str:
    """``audit --manual``: each mark with its run, key, state, who and why."""
    if not events:
        return "No manual marks match."
    rows = [
        [str(e.seq), fmt_time(e.timestamp), e.run_id, e.key,
         (f"{state_name(e.old_state)} -> {state_name(e.new_state)}", e.new_state), e.actor or "-", printable(e.reason or "")]
        for e in events
    ]
    return table(["SEQ", "TIME (UTC)", "RUN", "KEY", "STATE", "BY", "REASON"], rows, colours=(4,),
                 cuts={2: (12, "middle"), 3: (10, "middle"), 6: (16, "end"), 5: (8, "end")})


def events_json(events: Sequence[Any]) -> str:
    return json.dumps([event_dict(e) for e in events], indent=2)


# --- one run ---------------------------------------------------------------------


def _grouped(events: Sequence[Any]) -> dict[tuple[str, str], list[Any]]:
    groups: dict[tuple[str, str], list[Any]] = {}
    for e in events:
        groups.setdefault((e.kind, e.key), []).append(e)
    return groups


def _indented(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + printable(line) for line in text.rstrip("\n").splitlines())


def show_text(events: Sequence[Any], only: Callable[[Any], bool] | None = None, *, tracebacks: bool = False) -> str:
    """The run's header, then the flow and each task with its transitions, times and durations.

    ``only(last_state)``: show only the objects whose last state it accepts (``show --state``);
    ``tracebacks``: under each failure, where it failed.
    """
    first, flow_events = events[0], [e for e in events if e.kind == "flow"]
    final = flow_events[-1].new_state if flow_events else None
    took = between(first.timestamp, events[-1].timestamp)
    finished = isinstance(final, State) and final.is_finished()
    ended = "unfinished"
    if finished:
        ended = f"ended {fmt_time(events[-1].timestamp, date=False)}, took {fmt_duration(took)}"
    width = terminal_width()
    head = f"Run {printable(first.run_id)}  flow {printable(first.flow or first.name)}  "
    final_text = fmt_state(final)
    if width is not None:
        final_text = cut(final_text, max(width - len(head), 20), "message")
    lines = [head + colour(final_text, final), f"started {fmt_time(first.timestamp)} UTC, {ended}, {len(events)} events"]
    room = None if width is None else max(width - 30, 20)

    def note(text: str) -> str:
        return text if width is None else cut(text, max(width, 40), "end")

    groups = _grouped(events)
    shown = 0
    for (kind, key), group in groups.items():
        if only is not None and not only(group[-1].new_state):
            continue
        shown += 1
        spent = between(group[0].timestamp, group[-1].timestamp)
        name = f" ({group[0].name})" if kind == "task" and not key.startswith(f"{group[0].name}-") else ""
        lines += ["", click.style(printable(f"{kind} {key}{name}"), bold=True) + f"  {fmt_duration(spent)}"]
        previous = first.timestamp
        for e in group:
            attempt = f"#{e.attempt}" if kind == "task" else ""
            waited = "" if e is first else "+" + fmt_duration(between(previous, e.timestamp))
            lines.append(
                f"  {fmt_time(e.timestamp, date=False)}  {waited:>8}"
                f"  {attempt:<3} {transition_text(e, room)}"
            )
            if e.rewritten_by:
                lines.append(note(f"  {'':26}  ^ {rewrite_note(e)}"))
            if e.reason is not None:
                lines.append(note(printable(f"  {'':26}  ^ marked by {e.actor}: {e.reason}")))
            if tracebacks and e.traceback:
                lines.append(_indented(e.traceback, "  " + " " * 28 + "| "))
            previous = e.timestamp
    if only is not None and not shown:
        lines += ["", "No task or flow of this run ends in a state --state names."]
    return "\n".join(lines)


def show_json(events: Sequence[Any]) -> str:
    flow_events = [e for e in events if e.kind == "flow"]
    return json.dumps({
        "run_id": events[0].run_id,
        "flow": events[0].flow,
        "state": state_dict(flow_events[-1].new_state) if flow_events else None,
        "started": jsonable(events[0].timestamp),
        "ended": jsonable(events[-1].timestamp),
        "objects": [
            {"kind": kind, "key": key, "name": group[0].name, "events": [event_dict(e) for e in group]}
            for (kind, key), group in _grouped(events).items()
        ],
    }, indent=2)


def run_summary(flow: Any, state: State, run_id: str, seconds: float, as_json: bool) -> str:
    """The end of ``stateledger run``: the run id, the final state, task counts, what next."""
    results = state.result if isinstance(state.result, Mapping) else {}
    counts: dict[str, int] = {}
    for task_state in results.values():
        counts[state_name(task_state)] = counts.get(state_name(task_state), 0) + 1
    if as_json:
        return json.dumps({"run_id": run_id, "flow": flow.name, "state": state_dict(state),
                           "tasks": counts, "seconds": round(seconds, 6)})
    tally = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "no tasks"
    return "\n".join([
        "",
        f"Run {printable(run_id)}: " + colour(fmt_state(state), state),
        f"  tasks: {tally}; took {fmt_duration(seconds)}",
        f"  details: stateledger show {printable(run_id)}",
    ])


def verify_text(report: Any, path: str, run_id: str | None, as_json: bool) -> str:
    problems = [str(p) for p in report.problems]
    if as_json:
        data = {"ok": bool(report.ok), "checked": report.checked, "problems": problems,
                "checkpoints": getattr(report, "checkpoints", 0)}
        return json.dumps(data, indent=2)
    scope = f"run {run_id}" if run_id else "all runs"
    if report.ok:
        sealed = f", {report.checkpoints} checkpoint(s) extended" if getattr(report, "checkpoints", 0) else ""
        return f"OK: {report.checked} events verified ({scope}, ledger {path}{sealed})"
    lines = [click.style(f"FAILED: {len(problems)} problem(s) in {scope} (ledger {path}):", fg="red")]
    return "\n".join(lines + [f"  - {p}" for p in problems])


# --- replay ----------------------------------------------------------------------


class ReplayPrinter:
    """Prints what replay feeds listeners and handlers; handlers' errors are reported, not raised."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.failures = 0

    def listener(self, event: Any) -> None:
        click.echo(json.dumps({"event": event_dict(event)}) if self.as_json
                   else f"#{event.seq:<5} " + transition_line(event))

    def watch(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap ``handler`` so each call's outcome is printed: kept, rewritten, or raised."""
        from statemachine.pipeline import handler_name

        name = handler_name(handler)

        def watched(obj: Any, old: State, new: State) -> Any:
            try:
                result = handler(obj, old, new)
            except Exception as exc:
                self.failures += 1
                self.note(name, obj, "raised", repr(exc))
                return None
            if result is None or result == new:
                self.note(name, obj, "kept", "")
            else:
                self.note(name, obj, "rewrote", fmt_state(result))
            return result

        watched.__name__ = watched.__qualname__ = getattr(handler, "__qualname__", name)
        watched.__module__ = getattr(handler, "__module__", None)  # type: ignore[assignment]
        return watched

    def note(self, name: str, obj: Any, outcome: str, state: str) -> None:
        state = mask(state)  # a handler's live exception, not read from the (masked) ledger
        if self.as_json:
            click.echo(json.dumps({"handler": name, "object": repr(obj), "outcome": outcome, "state": state}))
        else:
            click.echo(printable(f"       {name}({obj!r}) -> {outcome}" + (f": {state}" if state else "")))

    def finish(self, run_id: str, fed: int) -> None:
        if self.as_json:
            return
        raised = f"; {self.failures} handler call(s) raised" if self.failures else ""
        click.echo(f"Replayed {fed} transitions of run {printable(run_id)}: no task ran, nothing was "
                   f"written{raised}.")


class PrintingLedger:
    """A ledger that shows each event once it is committed: ``stateledger run``'s printer.

    ``append`` commits through the wrapped ``EventStore`` and then calls
    ``show(event)``; everything else is the store's.
    """

    def __init__(self, store: Any, show: Callable[[Any], Any]) -> None:
        self.store, self.show = store, show

    def append(self, event: Any) -> Any:
        committed = self.store.append(event)
        self.show(committed)
        return committed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

