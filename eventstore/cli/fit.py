"""Fitting output to a terminal: its width, cutting a cell with "…", the "N more" footer.

On a terminal, tables and transition lines fit its width; piped, nothing is
cut (``grep`` sees whole lines). A cut keeps what matters: run ids and keys
keep their start and end; a transition keeps its new state, the start of its
message (an error's type) and its end (the error's detail), dropping the
task failure's standard prefix and then the old state first.
"""

from __future__ import annotations

import shutil
import sys

__all__ = ["terminal_width", "cut", "more_footer"]


def terminal_width() -> int | None:
    """The width output must fit on a terminal (``$COLUMNS`` overrides it); None when piped: nothing cut."""
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size().columns, 40)
    return None


def cut(text: str, width: int, how: str = "end") -> str:
    """``text`` in at most ``width`` characters, "…" marking what was left out.

    ``how``: ``"end"`` keeps the start; ``"middle"`` the start and the end (run
    ids, keys); ``"message"`` a state: its type, its message's start and end
    (an error's type and detail): ``Failed("ValueError('pr…on fire')")``.
    """
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:max(width, 0)]
    if how == "end":
        return text[: width - 1] + "…"
    if how == "message":
        return _cut_message(text, width)
    head = (width - 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[len(text) - tail:] if tail > 0 else "")


_GENERIC = "Error during execution of task: "


def _cut_message(text: str, width: int) -> str:
    """Keep, in this order: the new state, its message's start (an error's type) and end, the old state."""
    shorter = text.replace(_GENERIC, "…", 1)  # the task failure's standard prefix says nothing here
    if len(shorter) <= width:
        return shorter
    arrow = shorter.find(" -> ")
    state = shorter[arrow + 4:] if arrow >= 0 and shorter.find('("') > arrow else shorter
    if len(state) <= width:
        return state
    opened = state.find('("')
    head = opened + 2 if 0 <= opened < width // 2 else 0
    room = width - head - 1
    if room <= 0:
        return state[: width - 1] + "…"
    body = state[head:].removeprefix("…")
    start = room // 2
    return state[:head] + body[:start] + "…" + body[len(body) - (room - start):]


def more_footer(shown: int, total: int, what: str) -> str | None:
    """``… 12 more runs; use --limit N to see more (--limit 0: all)``, or None when nothing was left out.

    ``what``: the singular noun (``run``, ``transition``).
    """
    if total <= shown:
        return None
    more = total - shown
    return f"… {more} more {what}{'' if more == 1 else 's'}; use --limit N to see more (--limit 0: all)"
