"""The pure formatter: a transition as a ``Notice``, and the ``Notice`` as text or JSON.

Nothing here touches the network: the formatter is tested on its own. Every
text passes through ``mask``, so a secret's value never leaves in a notification.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from statemachine.context import current_run_id
from statemachine.secrets import mask
from statemachine.states import Retrying, State, utcnow

__all__ = ["Notice", "default_text", "format_text", "format_title", "event_payload", "TEMPLATE_FIELDS", "template_problem"]


@dataclass(frozen=True)
class Notice:
    """What one notification tells: a transition of a task or flow, from a handler call or an event."""

    kind: str  # "task" | "flow"
    name: str
    key: str
    flow: str  # the flow's name ("" when a state handler cannot know it)
    run_id: str | None  # None outside a run (e.g. a handler tried by hand)
    old_state: State
    new_state: State
    time: datetime.datetime
    attempt: int | None = None
    seq: int | None = None
    event_id: str = ""
    rewritten_by: tuple[str, ...] = ()

    @classmethod
    def from_handler(cls, obj: Any, old_state: State, new_state: State) -> Notice:
        """A notice from a state handler's arguments (a Task, a Flow, or a replay stand-in)."""
        kind = getattr(obj, "kind", None)
        if kind not in ("task", "flow"):
            from statemachine.flow import Flow

            kind = "flow" if isinstance(obj, Flow) else "task"
        name = str(getattr(obj, "name", None) or obj)
        key = getattr(obj, "key", None)
        run_id = getattr(obj, "run_id", None) or current_run_id()
        return cls(
            kind=kind,
            name=name,
            key=key if isinstance(key, str) else name,
            flow=name if kind == "flow" else str(getattr(obj, "flow", "") or ""),
            run_id=run_id if isinstance(run_id, str) else None,
            old_state=old_state,
            new_state=new_state,
            time=utcnow(),
            attempt=getattr(new_state, "run_count", None),
        )

    @classmethod
    def from_event(cls, event: Any) -> Notice:
        """A notice from a committed ``Event`` (live listener, durable subscription, replay)."""
        return cls(
            kind=event.kind,
            name=event.name,
            key=event.key,
            flow=event.flow or (event.name if event.kind == "flow" else ""),
            run_id=event.run_id,
            old_state=event.old_state,
            new_state=event.new_state,
            time=event.timestamp,
            attempt=event.attempt,
            seq=event.seq,
            event_id=event.event_id,
            rewritten_by=tuple(event.rewritten_by or ()),
        )


def _when(moment: Any) -> str:
    if not isinstance(moment, datetime.datetime):
        return "" if moment is None else str(moment)
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def default_text(n: Notice) -> str:
    """The default message: who, which state and why, when it retries, which run, when."""
    state = n.new_state
    head = f"{n.kind.capitalize()} {n.name}"
    if n.kind == "task" and n.flow:
        head += f" (flow {n.flow})"
    head += f" is now {type(state).__name__}"
    head += f": {state.message}" if state.message else ""
    lines = [head if head.endswith((".", "!", "?")) else head + "."]
    if isinstance(state, Retrying):
        lines.append(f"It will run again at {_when(state.start_time)}.")
    lines.append(f"Run {n.run_id} at {_when(n.time)}." if n.run_id else f"At {_when(n.time)}.")
    return "\n".join(lines)


def _fields(n: Notice) -> dict[str, Any]:
    state = n.new_state
    return {
        "kind": n.kind,
        "Kind": n.kind.capitalize(),
        "name": n.name,
        "key": n.key,
        "flow": n.flow,
        "run_id": n.run_id or "",
        "state": type(state).__name__,
        "message": state.message or "",
        "new_state": repr(state),
        "old_state": repr(n.old_state),
        "old": type(n.old_state).__name__,
        "time": _when(n.time),
        "timestamp": n.time.isoformat(),
        "start_time": _when(getattr(state, "start_time", None)),
        "attempt": "" if n.attempt is None else n.attempt,
        "text": default_text(n),
    }


#: The ``{fields}`` a ``template=`` may use.
TEMPLATE_FIELDS = tuple(
    _fields(Notice("task", "t", "t-1", "f", "r", State(), State(), utcnow()))  # type: ignore[arg-type]
)


def format_text(notice: Notice, template: str | None = None) -> str:
    """The notification's text: ``template.format(**fields)``, or the default text."""
    text = default_text(notice) if template is None else template.format(**_fields(notice))
    return mask(text)


def format_title(notice: Notice) -> str:
    """A one-line title (email subject, apprise title)."""
    return mask(f"[stateledger] {notice.kind.capitalize()} {notice.name}: {type(notice.new_state).__name__}")


def _state_json(state: State | None) -> dict[str, Any] | None:
    if state is None:
        return None
    out: dict[str, Any] = {"type": type(state).__name__, "message": state.message}
    for field, value in state.extras().items():
        out[field] = value.isoformat() if isinstance(value, datetime.datetime) else value
    return out


def event_payload(notice: Notice, template: str | None = None) -> dict[str, Any]:
    """The transition as JSON-able data (what ``webhook_notifier`` posts). Results are left out."""
    payload = {
        "text": format_text(notice, template),
        "run_id": notice.run_id,
        "flow": notice.flow,
        "kind": notice.kind,
        "name": notice.name,
        "key": notice.key,
        "attempt": notice.attempt,
        "timestamp": notice.time.isoformat(),
        "old_state": _state_json(notice.old_state),
        "new_state": _state_json(notice.new_state),
        "seq": notice.seq,
        "event_id": notice.event_id or None,
        "rewritten_by": list(notice.rewritten_by),
    }
    return _masked(payload)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def template_problem(template: Any) -> str | None:
    """Why ``template`` cannot be used as a ``template=`` (None when it can)."""
    if not isinstance(template, str):
        return f"template= must be a str.format string, got {template!r}"
    sample = Notice("task", "t", "t-1", "f", "r", State(), State(), utcnow())
    try:
        template.format(**_fields(sample))
    except KeyError as exc:
        return (
            f"template= uses the field {{{exc.args[0]}}}, which does not exist; "
            f"the fields are: {', '.join(TEMPLATE_FIELDS)}"
        )
    except (IndexError, ValueError) as exc:
        return f"template= is not a valid str.format string ({exc}); use named fields such as {{name}} {{state}}"
    return None
