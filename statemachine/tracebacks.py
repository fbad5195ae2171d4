"""Where a task failed: the formatted traceback of a failure, live or read back from the ledger.

A ``Failed`` state (or a subclass) whose ``result`` is an exception carries
its traceback; the ledger's codec stores it, masked like everything else and
cut to a size, under the state's ``"traceback"`` key, and puts it back on the
state it decodes. ``traceback_of`` answers for both.
"""

from __future__ import annotations

import traceback
from typing import Any

from .states import Failed, State

__all__ = ["traceback_of", "format_traceback", "set_stored_traceback", "keep_end"]


def format_traceback(exc: BaseException) -> str | None:
    """``exc``'s traceback as Python prints it, or None when it has none (it was never raised)."""
    if exc.__traceback__ is None:
        return None
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def traceback_of(state: Any) -> str | None:
    """The traceback of a failed state: the one stored in the ledger, else its exception's, else None."""
    if not isinstance(state, Failed):
        return None
    stored = state.__dict__.get("_traceback")
    if stored is not None:
        return stored  # type: ignore[no-any-return]
    result = state.result
    return format_traceback(result) if isinstance(result, BaseException) else None


def set_stored_traceback(state: State, text: str) -> None:
    """Attach the traceback read back from the ledger to a decoded state."""
    state.__dict__["_traceback"] = text


def keep_end(text: str, limit: int) -> str:
    """``text``, or its last ``limit`` characters after a line saying how much was cut (the end is where it failed)."""
    if len(text) <= limit:
        return text
    return f"<traceback cut: {len(text)} characters, the last {limit} kept>\n" + text[-limit:]
