"""A closed pipe is not an error: ``stateledger ... | head`` ends quietly, and a run goes on.

When the reader of stdout goes away (``head -1`` read its line), the next
write raises ``BrokenPipeError``. A read command then stops printing and
exits 0; ``stateledger run`` keeps running its flow to the end (every
transition is still committed), only its printing stops. ``silence_stdout``
points file descriptor 1 at ``/dev/null`` so no later write, nor the flush at
exit, raises again; ``SafeWriter`` is the stream tasks and our lines write to
during a run.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TextIO

__all__ = ["silence_stdout", "SafeWriter", "flush_quietly"]


def silence_stdout() -> None:
    """Point stdout's file descriptor at /dev/null: the reader is gone, nothing more reaches it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def flush_quietly() -> bool:
    """Flush stdout; True when its reader went away (and stdout is silenced from now on)."""
    try:
        sys.stdout.flush()
        return False
    except BrokenPipeError:
        silence_stdout()
        return True


class SafeWriter(io.TextIOBase):
    """A text stream over ``stream`` that stops writing, without raising, once its pipe closed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:  # type: ignore[override]
        if not self.broken:
            try:
                self.stream.write(text)
                if "\n" in text:
                    self.stream.flush()  # line by line, so the run's output is live
            except BrokenPipeError:
                self._broke()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._broke()

    def _broke(self) -> None:
        self.broken = True
        if _is_stdout(self.stream):
            silence_stdout()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"


def _is_stdout(stream: TextIO) -> bool:
    try:
        return stream.fileno() == 1
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
