"""Export events as JSON lines or CSV, and import a JSON-lines export into another ledger.

Every record (and the CSV header) has ``run_id``. A JSON-lines record holds
every stored column, states as JSON objects, so ``import_jsonl`` can put the
exact stored texts back: each event keeps its ``prev_hash`` and ``hash``, and
the importing ledger verifies them before appending (a record whose hash does
not match its content is refused). An event's hash covers the seq it was
committed under; the importing ledger gives it a new seq and records which
seq (``hashed_seq`` in a record of an event imported before) and which rule
its hash covers (``Recorder.append(rule=...)``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from typing import Any, Iterator, TextIO

from .codec import to_json
from .errors import LedgerError
from .mapper import COLUMNS, CONTENT, ContentRow, chain_hash
from .protocol import Query, Recorder, run_not_found

__all__ = ["export", "import_jsonl", "copy_ledger", "CSV_HEADER"]

#: The CSV columns: the stored columns plus the new state's message; states as JSON text.
CSV_HEADER = ("seq", "run_id", "timestamp", "kind", "name", "key", "flow", "attempt", "state", "message",
              "old_state", "new_state", "proposed_state", "rewritten_by", "actor", "event_id",
              "prev_hash", "hash")
_STATE_COLUMNS = ("old_state", "new_state", "proposed_state", "rewritten_by")


@contextlib.contextmanager
def _opened(file: Any, mode: str) -> Iterator[TextIO]:
    if isinstance(file, (str, os.PathLike)):
        with open(file, mode, encoding="utf-8", newline="") as f:
            yield f
    else:
        yield file


def export(recorder: Recorder, file: Any, format: str = "jsonl", run_id: str | None = None) -> int:  # noqa: A002
    """Write the ledger's events (or one run's) to ``file`` (a path or an open text file); return how many."""
    if format not in ("jsonl", "csv"):
        raise ValueError(f'format must be "jsonl" or "csv", got {format!r}')
    if run_id is not None and not recorder.runs(run_id=run_id):
        raise run_not_found(recorder, run_id)
    rows = recorder.iter_rows(Query(run_id=run_id))
    moved = {seq: hashed for seq, (version, hashed) in recorder.hash_rules().exceptions.items() if version == 2}
    n = 0
    with _opened(file, "w") as out:
        if format == "jsonl":
            write = out.write
            for row in rows:
                rec = {c: v for c, v in zip(COLUMNS, row) if c not in _STATE_COLUMNS}
                if moved.get(row.seq, row.seq) != row.seq:
                    rec["hashed_seq"] = moved[row.seq]
                head = to_json(rec)
                write(f'{head[:-1]},"old_state":{row.old_state},"new_state":{row.new_state},'
                      f'"proposed_state":{row.proposed_state or "null"},"rewritten_by":{row.rewritten_by}}}\n')
                n += 1
        else:
            writer = csv.writer(out)
            writer.writerow(CSV_HEADER)
            for row in rows:
                rec = row._asdict()
                rec["message"] = json.loads(row.new_state).get("message") or ""
                writer.writerow(["" if rec[c] is None else rec[c] for c in CSV_HEADER])
                n += 1
    return n


def import_jsonl(recorder: Recorder, file: Any) -> int:
    """Append the events of a JSON-lines export to ``recorder``; return how many."""
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else getattr(file, "name", "<file>")
    n = 0
    with _opened(file, "r") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                row = ContentRow._make(
                    (to_json(rec[c]) if rec[c] is not None else None) if c in _STATE_COLUMNS else rec[c]
                    for c in CONTENT
                )
                prev_hash, hash_ = rec["prev_hash"], rec["hash"]
            except (ValueError, KeyError, TypeError) as exc:
                raise LedgerError(
                    f"Line {lineno} of {name} is not an exported event ({exc!r}); import only files "
                    "written by EventStore.export(format='jsonl').", recorder.path) from exc
            hashed = rec.get("hashed_seq", rec.get("seq"))
            if type(hashed) is int and chain_hash(prev_hash, row, hashed) == hash_:
                rule: tuple[int, int | None] = (2, hashed)
            elif chain_hash(prev_hash, row) == hash_:
                rule = (1, None)  # written by schema 1, whose hashes did not cover the seq
            else:
                raise LedgerError(
                    f"Line {lineno} of {name} (run {rec.get('run_id')}, seq {rec.get('seq')}) does not "
                    "match its hash: the export was changed. Nothing after it was imported.",
                    recorder.path)
            recorder.append(row, prev_hash, hash_, rule=rule)
            n += 1
    return n


def copy_ledger(source: Recorder, target: Recorder, *, append: bool = False) -> int:
    """Append every row of ``source`` to ``target`` in seq order, hashes as stored; return how many.

    Read in one snapshot of ``source``. A ``target`` that holds rows is refused
    unless ``append``, and then if a run is in both; a source row whose hash does
    not match its content is refused (verify the source). Nothing is written
    before these checks pass.
    """
    with source.snapshot():
        if target.max_seq() and not append:
            raise LedgerError(
                f"Cannot copy {source.path} into {target.path}: the target holds events already. Copy into "
                "an empty ledger, or pass append=True (stateledger copy --append) to add the runs to it.",
                target.path)
        both = sorted(source.run_chain_ends().keys() & target.run_chain_ends().keys())
        if both:
            raise LedgerError(
                f"Cannot copy {source.path} into {target.path}: {len(both)} run(s) are in both, e.g. "
                f"{', '.join(both[:3])}. Nothing was copied; copy into a ledger without them.", target.path)
        rules = source.hash_rules()
        n = 0
        for row in source.iter_rows(Query()):
            content = row.content
            version, hashed = rules.of(row.seq)  # the hash covers the seq it was made with, kept in the copy
            if chain_hash(row.prev_hash, content, hashed if version == 2 else None) != row.hash:
                raise LedgerError(
                    f"Event seq {row.seq} of run {row.run_id} in {source.path} does not match its hash: the "
                    f"source was changed (stateledger verify --db SOURCE). {n} events were copied before it.",
                    source.path)
            target.append(content, row.prev_hash, row.hash, rule=(version, hashed))
            n += 1
    return n
