"""Export events as JSON lines or CSV, and import a JSON-lines export into another ledger.

Every record (and the CSV header) has ``run_id``. A JSON-lines record holds
every stored column, states as JSON objects, so ``import_jsonl`` can put the
exact stored texts back: each event keeps its ``prev_hash`` and ``hash``, and
the importing ledger verifies them before appending (a record whose hash does
not match its content is refused).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from typing import TYPE_CHECKING, Any, Iterator, TextIO

from .codec import clean_text, to_json
from .errors import LedgerError
from .rows import COLUMNS, chain_hash

if TYPE_CHECKING:
    from .store import EventStore

__all__ = ["export", "import_jsonl", "CSV_HEADER"]

#: The CSV columns: the stored columns plus the new state's message; states as JSON text.
CSV_HEADER = ("seq", "run_id", "timestamp", "kind", "name", "key", "flow", "attempt", "state", "message",
              "old_state", "new_state", "proposed_state", "rewritten_by", "actor", "event_id",
              "prev_hash", "hash")
_STATE_COLUMNS = ("old_state", "new_state", "proposed_state", "rewritten_by")


@contextlib.contextmanager
def _opened(file: Any, mode: str) -> Iterator[TextIO]:
    if isinstance(file, (str, os.PathLike)):
        with open(file, mode, encoding="utf-8", newline="", opener=_private) as f:
            yield f
    else:
        yield file


def _private(path: str, flags: int) -> int:
    """Open as ``open`` does, but a file created here is private to its owner (0600), whatever the umask."""
    return os.open(path, flags, 0o600)


def export(store: "EventStore", file: Any, format: str = "jsonl", run_id: str | None = None) -> int:  # noqa: A002
    """Write the ledger's events (or one run's) to ``file`` (a path or an open text file); return how many."""
    if format not in ("jsonl", "csv"):
        raise ValueError(f'format must be "jsonl" or "csv", got {format!r}')
    if run_id is not None:
        store.run(run_id)  # RunNotFoundError for an unknown run
    n = 0
    with _opened(file, "w") as out:
        if format == "jsonl":
            write = out.write
            for row in store.rows(run_id):
                head = to_json({c: row[i] for i, c in enumerate(COLUMNS) if c not in _STATE_COLUMNS})
                write(f'{head[:-1]},"old_state":{row[10]},"new_state":{row[11]},'
                      f'"proposed_state":{row[12] or "null"},"rewritten_by":{row[13]}}}\n')
                n += 1
        else:
            writer = csv.writer(out)
            writer.writerow(CSV_HEADER)
            for row in store.rows(run_id):
                rec = dict(zip(COLUMNS, row))
                message = json.loads(rec["new_state"]).get("message")
                rec["message"] = clean_text(str(message)) if message is not None else ""
                writer.writerow(["" if rec[c] is None else rec[c] for c in CSV_HEADER])
                n += 1
    return n


def import_jsonl(store: "EventStore", file: Any) -> int:
    """Append the events of a JSON-lines export to ``store``; return how many."""
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else getattr(file, "name", "<file>")
    n = 0
    with _opened(file, "r") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                row = tuple(
                    (to_json(rec[c]) if rec[c] is not None else None) if c in _STATE_COLUMNS else rec[c]
                    for c in COLUMNS[1:-2]
                )
                prev_hash, hash_ = rec["prev_hash"], rec["hash"]
            except (ValueError, KeyError, TypeError) as exc:
                raise LedgerError(
                    f"Line {lineno} of {name} is not an exported event ({exc!r}); import only files "
                    "written by EventStore.export(format='jsonl').", store._rec.path) from exc
            if chain_hash(prev_hash, row) != hash_:
                raise LedgerError(
                    f"Line {lineno} of {name} (run {rec.get('run_id')}, seq {rec.get('seq')}) does not "
                    "match its hash: the export was changed. Nothing after it was imported.",
                    store._rec.path)
            store._rec.append(row, prev_hash, hash_)
            n += 1
    return n
