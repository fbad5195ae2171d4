"""``report``: one run as a self-contained HTML page -- timeline, task graph, events, verify status.

Built only on the store's public reading API (``history``, ``rebuild``,
``verify``). The page needs no network: its CSS and JavaScript
(``report_assets/``) are inlined, the run's data is embedded as JSON, and a
Content-Security-Policy forbids every fetch and every script but the report's
own. Text from the ledger (run ids, task names, messages, results) reaches the
page escaped: in the header as HTML-escaped text, in the data block as JSON
with ``<``, ``>`` and ``&`` written as ``\\u003c``..., and the script inserts
it with ``textContent``, never as markup. Every text is masked
(``statemachine.masking``) like the ledger's, the flow's own task names
included, and a report file is created private (0600) like an export.

The ledger records each task's transitions but not the flow's edges; when the
flow itself is given (``flow=``) its edges are drawn, otherwise the graph
section lists the tasks in the order they first committed and says why.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import html
import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from statemachine.errors import CommandInputError
from statemachine.masking import MASKER
from statemachine.states import State

from .codec import clean_text

if TYPE_CHECKING:
    from statemachine.events import Event

    from .store import EventStore

__all__ = ["render_report", "write_report", "state_class"]

#: Characters of a result's repr kept in the page (the ledger holds the whole result).
RESULT_CHARS = 300


def state_class(state: State | None) -> str:
    """The colour class of a state: failed, cancelled, skipped, success, finished, running,
    retrying, paused, scheduled or pending (subclasses follow their parents)."""
    if state is None:
        return "none"
    if state.is_failed():
        return "failed"
    if state.is_cancelled():
        return "cancelled"
    if state.is_skipped():
        return "skipped"
    if state.is_successful():
        return "success"
    if state.is_finished():
        return "finished"
    if state.is_running():
        return "running"
    if state.is_retrying():
        return "retrying"
    if state.is_paused():
        return "paused"
    if state.is_scheduled():
        return "scheduled"
    return "pending"


def render_report(store: "EventStore", run_id: str, *, flow: Any = None) -> str:
    """The run as one self-contained HTML page (``RunNotFoundError`` for an unknown run).

    ``flow``: the run's ``Flow``, to draw its task graph (the ledger does not
    record edges); without it the graph lists tasks in commit order.
    """
    data = MASKER.mask_data(_model(store, run_id, flow))
    script = _asset("report.js")
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'")
    e = html.escape
    run = data["run"]
    return "".join((
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n",
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        '<link rel="icon" href="data:,">\n',
        f"<title>{e(run['flow'])} run {e(run_id)} · stateledger</title>\n",
        f"<style>{_asset('report.css')}</style>\n</head>\n<body>\n",
        _header(data),
        _asset("report.html"),
        f'<script type="application/json" id="report-data">{_embed_json(data)}</script>\n',
        f"<script>{script}</script>\n</body></html>\n",
    ))


def write_report(store: "EventStore", run_id: str, output: str | Path | TextIO = "-", *,
                 flow: Any = None) -> None:
    """Write the run's report to ``output``: a path, an open text file, or ``"-"`` for stdout.

    The page is rendered before the file is opened, so an unknown run leaves no empty file.
    """
    page = render_report(store, run_id, flow=flow)
    if output == "-":
        sys.stdout.write(page)
        sys.stdout.flush()
    elif isinstance(output, (str, Path)):
        with open(output, "w", encoding="utf-8", opener=_private) as f:
            f.write(page)
    else:
        output.write(page)


def _private(path: str, flags: int) -> int:
    """Open as ``open`` does, but a file created here is private to its owner (0600), whatever the umask."""
    return os.open(path, flags, 0o600)


# --- the data the page shows --------------------------------------------------------


def _model(store: "EventStore", run_id: str, flow: Any) -> dict[str, Any]:
    """The run as plain JSON-able data: run summary, verify status, tasks, events, edges."""
    events = store.history(run_id)
    view = store.rebuild(run_id)
    verified = store.verify(run_id)
    t0 = events[0].timestamp
    tasks: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    flow_events: list[int] = []
    for i, ev in enumerate(events):
        if ev.kind == "task":
            k = index.get(ev.key)
            if k is None:
                k = index[ev.key] = len(tasks)
                tasks.append({"key": ev.key, "name": ev.name, "events": [], "attempts": 1,
                              "rewritten": False, "marked": False, "retried": False})
            task = tasks[k]
            task["events"].append(i)
            task["attempts"] = max(task["attempts"], ev.attempt)
            task["rewritten"] = task["rewritten"] or bool(ev.rewritten_by)
            task["marked"] = task["marked"] or _reason(ev) is not None
            task["retried"] = task["retried"] or ev.new_state.is_retrying()
        else:
            k = -1
            flow_events.append(i)
        rows.append(_event(ev, k, t0))
    for task in tasks:
        final = view.tasks.get(task["key"], events[task["events"][-1]].new_state)
        task.update(type=type(final).__name__, cls=state_class(final), message=final.message or "")
        task["failed"] = final.is_failed()
    span = (events[-1].timestamp - t0).total_seconds() * 1000
    return {
        "run": {
            "id": run_id, "flow": view.flow or events[0].flow, "type": _type(view.state),
            "cls": state_class(view.state), "message": (view.state.message or "") if view.state else "",
            "started": _utc(t0), "last": _utc(events[-1].timestamp), "span_ms": round(span, 3),
            "finished": bool(view.state is not None and view.state.is_finished()),
            "events": len(events), "flow_events": flow_events,
        },
        "verify": {"ok": verified.ok, "checked": verified.checked, "problems": [str(p) for p in verified.problems]},
        "t0": t0.timestamp() * 1000,
        "tasks": tasks,
        "events": rows,
        "edges": _edges(flow, view.flow, index),
        "generated": _utc(datetime.datetime.now(datetime.timezone.utc)),
    }


def _event(ev: "Event", task: int, t0: datetime.datetime) -> dict[str, Any]:
    """One event as a compact dict; empty fields are left out."""
    new = ev.new_state
    row: dict[str, Any] = {
        "s": ev.seq, "t": round((ev.timestamp - t0).total_seconds() * 1000, 3), "k": task,
        "key": ev.key, "a": ev.attempt, "o": _type(ev.old_state), "oc": state_class(ev.old_state),
        "n": _type(new), "nc": state_class(new), "m": new.message or "", "by": ev.actor,
    }
    if new.result is not None:
        row["r"] = _short(new.result)
    if ev.proposed_state is not None:
        row["p"] = _type(ev.proposed_state)
        row["pm"] = ev.proposed_state.message or ""
    if ev.rewritten_by:
        row["w"] = list(ev.rewritten_by)
    reason = _reason(ev)
    if reason is not None:
        row["why"] = reason
    return row


def _edges(flow: Any, run_flow: str, index: dict[str, int]) -> list[list[int]] | None:
    """``[[upstream task, downstream task], ...]`` (task indices) from the flow, or None without one."""
    if flow is None:
        return None
    stored = functools.partial(clean_text, masker=MASKER)  # names and keys as the ledger stores them
    if not isinstance(getattr(flow, "name", None), str) or stored(flow.name) != run_flow:
        raise CommandInputError(
            f"Flow {getattr(flow, 'name', flow)!r} is not the flow of this run ({run_flow!r}); "
            "pass the flow the run was made with, or none (the graph then lists tasks in commit order)")
    edges = []
    for task in flow.ordered_tasks():
        down = index.get(stored(flow.key_of(task)))
        for edge in flow.upstream_edges(task):
            up = index.get(stored(flow.key_of(edge.upstream)))
            if up is not None and down is not None:
                edges.append([up, down])
    return edges


def _reason(ev: "Event") -> str | None:
    """A manual mark's reason (ledgers without marks have no such field)."""
    return getattr(ev, "reason", None)


def _type(state: State | None) -> str:
    return type(state).__name__ if state is not None else ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= RESULT_CHARS else text[: RESULT_CHARS - 1] + "…"


def _duration(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.3f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"


def _utc(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the page ------------------------------------------------------------------------


def _header(data: dict[str, Any]) -> str:
    """The run summary and verify status, rendered here (escaped) so they show without script."""
    e = html.escape
    run, ok = data["run"], data["verify"]
    ended = f"{run['last']} UTC" if run["finished"] else f"not finished; last event {run['last']} UTC"
    facts = [
        ("Flow", e(run["flow"])),
        ("State", f'<span class="badge c-{run["cls"]}">{e(run["type"] or "none")}</span> {e(run["message"])}'),
        ("Started", f"{e(run['started'])} UTC"),
        ("Ended", e(ended)),
        ("Duration", _duration(run["span_ms"])),
        ("Tasks", str(len(data["tasks"]))),
        ("Events", str(run["events"])),
    ]
    if ok["ok"]:
        verdict = (f'<p id="verify" class="verify ok">✔ Ledger verified: the hash chain of all '
                   f'{ok["checked"]} events of this run holds.</p>')
    else:
        problems = "".join(f"<li>{e(p)}</li>" for p in ok["problems"])
        verdict = (f'<div id="verify" class="verify bad"><p>✘ Verification failed: '
                   f'{len(ok["problems"])} problem(s) in {ok["checked"]} events. This report shows the '
                   f'ledger as it is now.</p><ul>{problems}</ul></div>')
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    return (f'<header><h1>Run <code id="run-id">{e(run["id"])}</code></h1>\n'
            f'<dl class="facts">{dl}</dl>\n{verdict}\n</header>\n')


def _embed_json(data: Any) -> str:
    """JSON safe inside ``<script>``: no ``</script>``, ``<!--`` or ``&`` can appear in it."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _asset(name: str) -> str:
    return resources.files("eventstore").joinpath("report_assets", name).read_text(encoding="utf-8")
