"""``verify``: recompute every hash chain, the runs summary and the checkpoints, and say what does not hold.

All of it is read in one consistent snapshot (``Recorder.snapshot``), so a
ledger being written never raises a false alarm. What is checked:

* **Each event**: its ``hash`` matches its content (``reason`` only when
  set: ``mapper.hashed_content``) and its seq (rule 2;
  rows of a schema-1 ledger, rule 1, without the seq: ``HashRules``) -- a
  changed or renumbered event is found.
* **Each run's chain**: each ``prev_hash`` is the hash of the run's previous
  event -- an inserted, deleted or reordered event is found.
* **The runs summary**, rebuilt from the events by the recorders' rule (a
  restart's flow event clears ``ended``, the next finished one sets it) and
  compared column by column (flow, state, started, ended, events, first/last
  seq, last hash) --
  events deleted from the end of a run, or a summary edited to hide a
  failure, are found.
* **Checkpoints** (given, and those the ledger recorded): the root of every
  event up to each one's seq is recomputed -- anything before it deleted,
  changed, renumbered or rewritten consistently, or lost with a ``-wal``
  file, is found; a checkpoint of another ledger is refused; with a public
  key, signatures are checked.
* **Durable-subscription cursors**: one beyond the last event (events it saw
  are gone), or moved back below the highest seq it ever reached.

``verify(recorder, run_id)`` reads only that run's events (and, when
checkpoints are given, the hashes up to them).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterable, Iterator

from .checkpoints import Checkpoint
from .mapper import COLUMNS, CONTENT_SLICE, FINISHED_TYPES, HashRules, RunRow, StoredRow, row_json
from .protocol import Query, Recorder, run_not_found
from .views import Problem, Report

__all__ = ["verify"]

_RUN, _TS, _KIND, _FLOW, _STATE = (COLUMNS.index(c) for c in ("run_id", "timestamp", "kind", "flow", "state"))


def verify(recorder: Recorder, run_id: str | None = None, *, checkpoints: Iterable[Checkpoint] = (),
           public_key: Any = None) -> Report:
    """A ``Report`` of the whole ledger (or only ``run_id``'s events), read in one consistent snapshot."""
    given = sorted(checkpoints, key=lambda c: c.seq)
    with recorder.snapshot():
        return _verify(recorder, run_id, given, public_key)


def _verify(recorder: Recorder, run_id: str | None, given: list[Checkpoint], key: Any) -> Report:
    summary = {r.run_id: r for r in recorder.run_rows(run_id)}
    if run_id is not None and not summary and not recorder.select(Query(run_id=run_id, limit=1), tail=True):
        raise run_not_found(recorder, run_id)
    problems: list[Problem] = []
    ledger_id = recorder.ledger_id()
    usable = [cp for cp in given if _usable(cp, ledger_id, key, problems)]
    recorded = recorder.checkpoints() if run_id is None else []
    bounds = sorted({cp.seq for cp in usable} | {cp.seq for cp in recorded})
    walk = _Walk(recorder.hash_rules(), bounds if run_id is None else [])
    q, tail = Query(run_id=run_id), run_id is not None
    fast = getattr(recorder, "verify_rows", None)  # the database writes the hashed text (Recorder docs)
    if fast is not None:
        walk.rows(fast(q, tail=tail), problems, lambda seq: _hashed_text(recorder, seq))
    else:
        walk.rows(_with_hashed_text(recorder.iter_rows(q, tail=tail)), problems)
    _compare_summary(summary, walk.built, walk.changed, problems)
    if run_id is not None and bounds:  # the run's events alone cannot give a root: fold the hashes up to them
        walk.fold(recorder.hashes(0, bounds[-1]), bounds)
    for cp in usable:
        _check_root(cp.seq, cp.count, cp.root, walk.at(cp.seq), "the checkpoint", problems)
    intact = 0  # the last recorded checkpoint that still matches: the change lies after it
    for row in recorded:
        before = len(problems)
        where = f" (the events up to seq {intact} still match the one recorded there)" if intact else ""
        _check_root(row.seq, row.count, row.root, walk.at(row.seq),
                    "the checkpoint recorded in the ledger", problems, where)
        intact = row.seq if len(problems) == before else intact
    if run_id is None:
        _check_cursors(recorder.cursors(), recorder.max_seq(), problems)
    problems.sort(key=lambda p: (p.run_id or "", p.seq if p.seq is not None else 0))
    runs = len(summary.keys() | walk.built.keys())
    return Report(not problems, walk.checked, problems, runs, len(given))


class _Walk:
    """One pass over the rows in seq order: hashes, chains, the summary rebuilt, and checkpoint roots."""

    def __init__(self, rules: HashRules, bounds: list[int]) -> None:
        self.rules = rules
        self.built: dict[str, list[Any]] = {}  # run_id -> RunRow fields but run_id, as the events say
        self.changed: set[str] = set()  # runs with a changed event: its content says nothing reliable
        self.checked = 0
        self.root, self.count, self.last_seq = "", 0, 0
        self.bounds = bounds  # checkpoint seqs, ascending: (count, root) is kept at each
        self.marks: dict[int, tuple[int, str]] = {}

    def rows(self, rows: Iterable[Any], problems: list[Problem],
             confirm: Callable[[int], str | None] | None = None) -> None:
        """Walk ``(*mapper.VERIFY_FIELDS, text)`` rows, ``text`` = prev_hash + JSON [seq, *content];
        ``confirm(seq)``: that text made by ``mapper.row_json``, asked when the database's does not match."""
        v2_from, exceptions = self.rules
        built, marks, bounds = self.built, self.marks, self.bounds
        next_bound = bounds[0] if bounds else None
        last_bound = bounds[-1] if bounds else 0  # no root is needed past the last checkpoint
        b = 0
        root, count = self.root, 0
        sha256, finished = hashlib.sha256, FINISHED_TYPES  # mapper.chain_hash, inlined: the hot path
        for seq, rid, ts, kind, flow, state, prev, stored, text in rows:
            while next_bound is not None and seq > next_bound:
                marks[next_bound] = (count, root)
                b += 1
                next_bound = bounds[b] if b < len(bounds) else None
            if seq < v2_from or seq in exceptions:
                text = self.by_rule(seq, prev, text)
            if sha256(text.encode()).hexdigest() != stored and not (
                    confirm is not None and self.matches(seq, prev, stored, confirm(seq))):
                self.changed.add(rid)
                problems.append(Problem(rid, seq, "changed",
                                        "its hash does not match its content and seq: the event was changed or "
                                        "renumbered"))
            run = built.get(rid)
            if run is None:
                run = built[rid] = [flow, "Pending", ts, None, 0, seq, seq, None]
            if (prev or None) != (run[7] or None):
                problems.append(Problem(
                    rid, seq, "chain broken",
                    "its prev_hash is not the hash of the run's previous event: an event before it was "
                    "deleted, inserted, reordered or rewritten with a new hash"))
            run[4] += 1
            run[6], run[7] = seq, stored
            if kind == "flow":  # the recorders' rule: a restart clears ``ended``, the next finish sets it
                run[1] = state
                run[3] = (run[3] or ts) if state in finished else None
            if seq <= last_bound:
                root = sha256((root + stored).encode()).hexdigest()
            count += 1
        self.checked = count
        self.root, self.count = root, count
        while next_bound is not None:
            marks[next_bound] = (count, root)
            b += 1
            next_bound = bounds[b] if b < len(bounds) else None

    def by_rule(self, seq: int, prev: str | None, text: str) -> str:
        """What the row ``seq`` was hashed over by its rule (``HashRules``), from rule 2's ``text``."""
        version, hashed = self.rules.of(seq)
        head = len(prev or "")
        content = text[head + len(str(seq)) + 2:]  # the content's values, after "prev[seq,"
        return text[:head] + ("[" if version == 1 else f"[{hashed},") + content

    def matches(self, seq: int, prev: str | None, stored: str, text: str | None) -> bool:
        """Whether the row's hash matches the text ``mapper.row_json`` makes of it."""
        if text is None:
            return False
        if seq < self.rules.v2_from or seq in self.rules.exceptions:
            text = self.by_rule(seq, prev, text)
        return hashlib.sha256(text.encode()).hexdigest() == stored

    def fold(self, hashes: Iterable[tuple[int, str]], bounds: list[int]) -> None:
        """Roots at each of ``bounds`` from ``(seq, hash)`` pairs alone (``verify RUN_ID`` with checkpoints)."""
        root, count, sha256, b = "", 0, hashlib.sha256, 0
        for seq, h in hashes:
            while b < len(bounds) and seq > bounds[b]:
                self.marks[bounds[b]] = (count, root)
                b += 1
            root = sha256((root + h).encode()).hexdigest()
            count += 1
        for bound in bounds[b:]:
            self.marks[bound] = (count, root)

    def at(self, seq: int) -> tuple[int, str]:
        """``(count, root)`` of the events with a seq up to ``seq`` (one of the walk's bounds)."""
        return self.marks[seq]


_WITH_SEQ = slice(0, CONTENT_SLICE.stop)  # seq + content but its reason: what rule 2 hashes after prev_hash


def _text(row: StoredRow) -> str:
    """What rule 2 hashes of a stored row: ``prev_hash + JSON [seq, *mapper.hashed_content(row)]``."""
    reason = row.reason
    return (row.prev_hash or "") + row_json(row[_WITH_SEQ] if reason is None else (*row[_WITH_SEQ], reason))


def _with_hashed_text(rows: Iterable[StoredRow]) -> Iterator[tuple[Any, ...]]:
    """Stored rows as ``(*mapper.VERIFY_FIELDS, text rule 2 hashes)``, what ``_Walk.rows`` walks."""
    for row in rows:
        yield (row[0], row[_RUN], row[_TS], row[_KIND], row[_FLOW], row[_STATE], row.prev_hash, row.hash,
               _text(row))


def _hashed_text(recorder: Recorder, seq: int) -> str | None:
    """The text rule 2 hashes for the row ``seq``, made by ``mapper.row_json`` (None if the row is gone)."""
    found = recorder.select(Query(after_seq=seq - 1, until_seq=seq))
    return _text(found[0]) if found else None


def _usable(cp: Checkpoint, ledger_id: str | None, key: Any, problems: list[Problem]) -> bool:
    """Whether a given checkpoint is of this ledger (and, with ``key``, signed by it); else a problem."""
    if cp.ledger_id != ledger_id:
        problems.append(Problem(None, cp.seq, "other ledger",
                                f"the checkpoint was taken of ledger {cp.ledger_id}, not of this one "
                                f"({ledger_id or 'a schema-1 ledger that has no id yet'}): it proves nothing "
                                "here; give a checkpoint of this ledger"))
        return False
    if key is not None and not cp.signature_ok(key):
        what = "is not signed" if not cp.signature else "has a signature the public key does not verify"
        problems.append(Problem(None, cp.seq, "signature",
                                f"the checkpoint {what}: it was made with another key, changed after signing, "
                                "or not made by the key's owner"))
    return True


def _check_root(seq: int, count: int, root: str, found: tuple[int, str], what: str,
                problems: list[Problem], where: str = "") -> None:
    have, got = found
    before = len(problems)
    if have < count:
        problems.append(Problem(None, seq, "checkpoint",
                                f"{what} sealed {count} events up to seq {seq} but {have} are present: events it "
                                "covers were deleted or renumbered past it, or lost with the ledger's -wal file"))
    elif have > count:
        problems.append(Problem(None, seq, "checkpoint",
                                f"{what} sealed {count} events up to seq {seq} but {have} are present: events "
                                "were inserted or renumbered before it"))
    elif got != root:
        problems.append(Problem(None, seq, "checkpoint",
                                f"the events up to seq {seq} are not those {what} sealed: an event before it was "
                                "changed, renumbered, or rewritten with every later hash recomputed"))
    if where and len(problems) > before:
        problems[-1] = Problem(None, seq, "checkpoint", problems[-1].detail + where)


_SUMMARY = RunRow._fields[1:]
#: What a run's changed event cannot vouch for (its "changed" problem already says it all).
_CONTENT = frozenset({"flow", "state", "started", "ended"})


def _compare_summary(summary: dict[str, RunRow], built: dict[str, list[Any]], changed: set[str],
                     problems: list[Problem]) -> None:
    """One problem per run whose runs-summary row differs from what its events say."""
    for rid in built.keys() - summary.keys():
        problems.append(Problem(rid, built[rid][6], "inserted",
                                "events of a run the runs table does not know: they were inserted, or the "
                                "run's summary row was deleted"))
    for rid, row in summary.items():
        events = built.get(rid)
        if events is None:
            problems.append(Problem(rid, None, "count",
                                    f"the runs table records {row.events} events but none is present: the run's "
                                    "events were deleted"))
            continue
        diffs = [(col, stored, found) for col, stored, found in zip(_SUMMARY, row[1:], events)
                 if (stored or None) != (found or None) and not (rid in changed and col in _CONTENT)]
        if not diffs:
            continue
        others = ", ".join(f"{col} {stored!r} where the events say {found!r}"
                           for col, stored, found in diffs if col != "events")
        if row.events != events[4]:
            detail = (f"the runs table records {row.events} events but {events[4]} are present: events were "
                      f"{'deleted' if events[4] < row.events else 'inserted'}")
            problems.append(Problem(rid, events[6], "count", detail + (f" (also {others})" if others else "")))
        elif [d[0] for d in diffs] == ["last_hash"]:
            problems.append(Problem(rid, events[6], "missing",
                                    "the run's last event is not the one recorded when it was committed"))
        else:
            problems.append(Problem(rid, events[6], "summary",
                                    f"the runs table was edited: it records {others}"))


def _check_cursors(cursors: dict[str, tuple[int, int]], max_seq: int, problems: list[Problem]) -> None:
    for name, (seq, high) in sorted(cursors.items()):
        if max(seq, high) > max_seq:
            problems.append(Problem(None, max(seq, high), "cursor",
                                    f"durable subscription {name!r} handled events up to seq {max(seq, high)} but "
                                    f"the ledger ends at seq {max_seq}: events were deleted from its end, or "
                                    "lost with its -wal file"))
        if seq < high:
            problems.append(Problem(None, seq, "cursor",
                                    f"durable subscription {name!r} is at seq {seq} but had reached seq {high}: "
                                    "its cursor was moved back (its listeners would see those events again)"))
