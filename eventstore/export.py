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
import re
from typing import Any, Iterator, TextIO

from statemachine.errors import ArgumentError

from .codec import clean_text, to_json
from .errors import ImportLineError, LedgerError
from .mapper import COLUMNS, CONTENT, ContentRow, chain_hash
from .protocol import Importing, Query, Recorder, run_not_found

__all__ = ["export", "import_jsonl", "copy_ledger", "CSV_HEADER", "MAX_LINE_BYTES"]

#: The CSV columns: the stored columns plus the new state's message; states as JSON text.
CSV_HEADER = ("seq", "run_id", "timestamp", "kind", "name", "key", "flow", "attempt", "state", "message",
              "old_state", "new_state", "proposed_state", "rewritten_by", "actor", "reason",
              "event_id", "prev_hash", "hash")
_STATE_COLUMNS = ("old_state", "new_state", "proposed_state", "rewritten_by")


@contextlib.contextmanager
def _opened(file: Any, mode: str) -> Iterator[TextIO]:
    if isinstance(file, (str, os.PathLike)):
        if "b" in mode:
            with open(file, mode) as f:
                yield f
            return
        with open(file, mode, encoding="utf-8", newline="", opener=_private) as f:
            yield f
    else:
        yield file


def _private(path: str, flags: int) -> int:
    """Open as ``open`` does, but a file created here is private to its owner (0600), whatever the umask."""
    return os.open(path, flags, 0o600)


def export(recorder: Recorder, file: Any, format: str = "jsonl", run_id: str | None = None) -> int:  # noqa: A002
    """Write the ledger's events (or one run's) to ``file`` (a path or an open text file); return how many."""
    if format not in ("jsonl", "csv"):
        raise ArgumentError(f'format must be "jsonl" or "csv", got {format!r}')
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
                message = json.loads(row.new_state).get("message")
                rec["message"] = clean_text(str(message)) if message is not None else ""
                writer.writerow(["" if rec[c] is None else rec[c] for c in CSV_HEADER])
                n += 1
    return n


#: A line of an export longer than this many bytes is refused (``import_jsonl(max_line_bytes=)``).
MAX_LINE_BYTES = 8 * 1024 * 1024

#: The stored texts' JSON, rebuilt from an export's objects byte for byte: ``codec.to_json``'s form,
#: NaN accepted (ledgers written before it was refused hold some) and lone surrogates kept escaped.
_stored_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_SURROGATE = re.compile("[\ud800-\udfff]")
_TEXT = ("event_id", "run_id", "timestamp", "key", "state", "hash")
_TEXT_OR_NONE = ("name", "flow", "actor", "prev_hash")
_OPTIONAL_TEXT = ("reason",)  # absent from exports of schema-1 ledgers


def import_jsonl(recorder: Recorder, file: Any, *, max_line_bytes: int = MAX_LINE_BYTES) -> int:
    """Append the events of a JSON-lines export to ``recorder``, all or nothing; return how many.

    Every line is checked (UTF-8, at most ``max_line_bytes`` bytes, one
    exported event, its hash, its run's chain) as it is stored, in ONE
    transaction (``protocol.Importing``): the first bad line raises
    ``ImportLineError`` naming the line and what was wrong, and the ledger is
    left exactly as it was, so the file can be fixed and imported again.
    ``file``: a path, or an open file (binary, or text: then the limit counts
    characters). A recorder without ``import_rows`` gets the whole file
    checked first, then appended row by row.
    """
    if not isinstance(max_line_bytes, int) or isinstance(max_line_bytes, bool) or max_line_bytes < 1:
        raise ArgumentError(f"max_line_bytes must be a positive int, got {max_line_bytes!r}")
    name = os.fspath(file) if isinstance(file, (str, os.PathLike)) else getattr(file, "name", "<file>")
    where = _Where(recorder.path, str(name))
    with _opened(file, "rb") as f:
        rows = _rows(f, where, max_line_bytes)
        try:
            if isinstance(recorder, Importing):
                return recorder.import_rows(rows)
            checked = list(rows)  # every line is checked before the first append
            for row, prev_hash, hash_, rule in checked:
                recorder.append(row, prev_hash, hash_, rule=rule)
            return len(checked)
        except ImportLineError:
            raise
        except LedgerError as exc:
            if type(exc) is not LedgerError:  # a write failure: as the recorder said it
                raise
            raise where.error(where.line, "ledger", f"{exc} Nothing of the file was imported.") from exc


class _Where:
    """The line being read, and the ``ImportLineError`` of a line."""

    def __init__(self, ledger: str, file: str) -> None:
        self.ledger, self.file, self.line = ledger, file, 0

    def error(self, line: int, reason: str, what: str) -> ImportLineError:
        return ImportLineError(f"Line {line} of {self.file}: {what}", self.ledger, self.file, line, reason)


def _rows(f: Any, where: _Where, limit: int) -> Iterator[tuple[ContentRow, str | None, str, tuple[int, int | None]]]:
    """(row, prev_hash, hash, hash rule) of each line; ``ImportLineError`` at the first bad one."""
    text_mode = isinstance(f.read(0), str)
    last: dict[str, str] = {}  # run_id -> the hash of its previous line in this file
    while True:
        n = where.line = where.line + 1
        try:
            raw = f.readline(limit + 2)
        except UnicodeDecodeError as exc:
            raise where.error(n, "not UTF-8", f"it is not UTF-8 ({exc.reason}); nothing was imported. Exports "
                              "are written in UTF-8: the file was changed or damaged on its way.") from None
        if not raw:
            return
        ended = raw.endswith("\n" if text_mode else b"\n")
        body = raw[:-1] if ended else raw
        if len(body) > limit:
            raise where.error(n, "too long", f"it is longer than {limit} {'characters' if text_mode else 'bytes'}"
                              "; nothing was imported. If the export is genuine, import it with a larger "
                              "max_line_bytes=.")
        if not text_mode:
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise where.error(
                    n, "not UTF-8", f"byte {body[exc.start]:#04x} at column {exc.start + 1} is not UTF-8 "
                    f"({exc.reason}); nothing was imported. Exports are written in UTF-8: the file was "
                    "changed or damaged on its way.") from None
        if not body.strip():
            continue
        try:
            rec = json.loads(body)
        except ValueError as exc:
            if not ended:
                raise where.error(n, "cut off", "the last line is cut off (it ends without a newline, in the "
                                  "middle of an event); nothing was imported. The file was truncated: export "
                                  "or copy it again, whole.") from None
            raise where.error(n, "not JSON", f"it is not an exported event: not valid JSON ({_json_error(exc)}); "
                              "nothing was imported. Import only files written by "
                              "EventStore.export(format='jsonl'), unchanged.") from None
        row, prev_hash, hash_ = _event(rec, n, where)
        hashed = rec.get("hashed_seq", rec.get("seq"))  # the seq the hash covers (rule 2)
        if type(hashed) is int and chain_hash(prev_hash, row, hashed) == hash_:
            rule: tuple[int, int | None] = (2, hashed)
        elif chain_hash(prev_hash, row) == hash_:
            rule = (1, None)  # written by schema 1, whose hashes did not cover the seq
        else:
            raise where.error(n, "hash", f"event {rec.get('event_id')} (run {row.run_id}, seq {rec.get('seq')}) "
                              "does not match its hash: the line was changed after the export; nothing "
                              "was imported. Restore the original line.")
        before = last.get(row.run_id)
        if before is not None and prev_hash != before:
            raise where.error(n, "chain", f"event {row.event_id} of run {row.run_id} follows hash {prev_hash}, "
                              f"but the run's previous line ends with {before}: a line of that run is missing "
                              "or out of order; nothing was imported. Export the run again.")
        last[row.run_id] = hash_
        yield row, prev_hash, hash_, rule


def _event(rec: Any, n: int, where: _Where) -> tuple[ContentRow, str | None, str]:
    """The content row, prev_hash and hash of one parsed line (``ImportLineError`` if it is no event)."""
    def wrong(what: str) -> ImportLineError:
        return where.error(n, "not an event", f"it is not an exported event: {what}; nothing was imported. "
                           "Import only files written by EventStore.export(format='jsonl'), unchanged.")

    if not isinstance(rec, dict):
        raise wrong(f"a JSON {type(rec).__name__}, not an object")
    missing = [c for c in (*CONTENT, "prev_hash", "hash") if c not in rec and c != "reason"]  # schema 1: none
    if missing:
        raise wrong(f"no {', '.join(repr(m) for m in missing)} field")
    bad = [c for c in _TEXT if not isinstance(rec[c], str)]
    bad += [c for c in _TEXT_OR_NONE if rec[c] is not None and not isinstance(rec[c], str)]
    bad += [c for c in _OPTIONAL_TEXT if rec.get(c) is not None and not isinstance(rec[c], str)]
    bad += [c for c in ("old_state", "new_state") if not isinstance(rec[c], dict)]
    if rec["proposed_state"] is not None and not isinstance(rec["proposed_state"], dict):
        bad.append("proposed_state")
    if not (isinstance(rec["rewritten_by"], list) and all(isinstance(h, str) for h in rec["rewritten_by"])):
        bad.append("rewritten_by")
    if type(rec["attempt"]) is not int:
        bad.append("attempt")
    if rec["kind"] not in ("task", "flow"):
        bad.append("kind")
    if bad:
        raise wrong(f"field {', '.join(repr(b) for b in bad)} has the wrong type or value")
    row = ContentRow._make(_stored_text(rec[c]) if c in _STATE_COLUMNS and rec[c] is not None else rec.get(c)
                           for c in CONTENT)
    return row, rec["prev_hash"], rec["hash"]


def _stored_text(value: Any) -> str:
    text = _stored_json(value)
    if not text.isascii() and _SURROGATE.search(text):  # as codec stores them: JSON's \udcxx escape
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def _json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc)


def copy_ledger(source: Recorder, target: Recorder, *, append: bool = False) -> int:
    """Append every row of ``source`` to ``target`` in seq order, hashes as stored; return how many.

    Read in one snapshot of ``source``. A ``target`` that holds rows is refused
    unless ``append``, and then if a run is in both; a source row whose hash does
    not match its content is refused (verify the source). Nothing is written
    before these checks pass, and a target that imports in one transaction
    (``protocol.Importing``) gets the whole ledger or nothing.
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
        copied = [0]
        rules = source.hash_rules()

        def checked() -> Iterator[tuple[ContentRow, str | None, str, tuple[int, int | None]]]:
            for row in source.iter_rows(Query()):
                content = row.content
                version, hashed = rules.of(row.seq)  # the hash covers the seq it was made with, kept in the copy
                if chain_hash(row.prev_hash, content, hashed if version == 2 else None) != row.hash:
                    done = ("Nothing was copied" if isinstance(target, Importing)
                            else f"{copied[0]} events were copied before it")
                    raise LedgerError(
                        f"Event seq {row.seq} of run {row.run_id} in {source.path} does not match its hash: the "
                        f"source was changed (stateledger verify --db SOURCE). {done}.", source.path)
                yield content, row.prev_hash, row.hash, (version, hashed)

        if isinstance(target, Importing):  # one transaction: the whole ledger or nothing
            return target.import_rows(checked())
        for content, prev_hash, hash_, rule in checked():
            target.append(content, prev_hash, hash_, rule=rule)
            copied[0] += 1
    return copied[0]
