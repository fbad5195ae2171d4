"""``verify``: recompute every hash chain and say what does not hold.

Each run's events form a chain: ``hash = sha256(prev_hash + canonical JSON of
the event's content)`` and each event's ``prev_hash`` is the hash of the run's
previous event. Walking the rows in ``seq`` order finds a changed event (its
hash no longer matches its content), an inserted, deleted or reordered one
(a ``prev_hash`` that is not the previous event's hash), and the ``runs``
table, written in the same transaction as each event, catches events removed
from the end of a run (its count and last hash no longer match).
"""

from __future__ import annotations

import hashlib

from .mapper import hashed_content, row_json
from .protocol import Query, Recorder, run_not_found
from .views import Problem, Report

__all__ = ["verify"]


def verify(recorder: Recorder, run_id: str | None = None) -> Report:
    """A ``Report`` of every run's chain (or only ``run_id``'s), read in one consistent snapshot."""
    with recorder.snapshot():
        return _verify(recorder, run_id)


def _verify(recorder: Recorder, run_id: str | None) -> Report:
    ends = recorder.run_chain_ends()
    if run_id is not None:
        if run_id not in ends:
            raise run_not_found(recorder, run_id)
        ends = {run_id: ends[run_id]}
    last: dict[str, str | None] = {}
    counts: dict[str, int] = {}
    last_seq: dict[str, int] = {}
    problems: list[Problem] = []
    checked = 0
    sha256 = hashlib.sha256  # mapper.chain_hash, inlined: this loop is the hot path
    for row in recorder.iter_rows(Query(run_id=run_id), tail=True):
        checked += 1
        seq, rid, prev, stored = row.seq, row.run_id, row.prev_hash, row.hash
        expected = last.get(rid)
        if (prev or None) != (expected or None):
            problems.append(Problem(
                rid, seq, "chain broken",
                "its prev_hash is not the hash of the run's previous event: an event before it was "
                "deleted, inserted, reordered or rewritten with a new hash"))
        if sha256(((prev or "") + row_json(hashed_content(row))).encode()).hexdigest() != stored:
            problems.append(Problem(rid, seq, "changed", "its hash does not match its content: the event was changed"))
        last[rid] = stored
        counts[rid] = counts.get(rid, 0) + 1
        last_seq[rid] = seq
    for rid in counts.keys() - ends.keys():
        problems.append(Problem(
            rid, last_seq[rid], "inserted", "events of a run the runs table does not know: they were inserted"))
    for rid, (events, last_hash) in ends.items():
        found = counts.get(rid, 0)
        if found != events:
            problems.append(Problem(
                rid, last_seq.get(rid), "count",
                f"the runs table records {events} events but {found} are present: events were "
                f"{'deleted' if found < events else 'inserted'}"))
        elif last.get(rid) != last_hash:
            problems.append(Problem(
                rid, last_seq.get(rid), "missing",
                "the run's last event is not the one recorded when it was committed"))
    problems.sort(key=lambda p: (p.run_id, p.seq if p.seq is not None else 0))
    return Report(not problems, checked, problems, len(ends.keys() | counts.keys()))
