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


#: A line of the traceback longer than this (a huge exception message: the state keeps it
#: already) keeps its first and last half of it.
LINE_LIMIT = 2000


def format_traceback(exc: BaseException) -> str | None:
    """``exc``'s traceback as Python prints it, or None when it was never raised."""
    if exc.__traceback__ is None:
        return None
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _cut_line(line: str) -> str:
    if len(line) <= LINE_LIMIT:
        return line
    half = LINE_LIMIT // 2
    return f"{line[:half]}<{len(line) - 2 * half} characters cut>{line[-half:]}"


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
    """A traceback to store (already masked): very long lines cut in their middle, then its last ``limit`` characters.

    The end is where it failed; a line saying how much was cut comes first.
    """
    if len(text) > LINE_LIMIT:
        text = "\n".join(_cut_line(line) for line in text.split("\n"))
    if len(text) <= limit:
        return text
    return f"<traceback cut: {len(text)} characters, the last {limit} kept>\n" + text[-limit:]
