"""The in-memory recorder: ``EventStore(":memory:")``, and the engine's fast path.

The same interface as ``recorder.SQLiteRecorder``, on plain Python lists.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

from .rows import (
    FINISHED_TYPES, Query, RunRecord, _I_KEY, _I_KIND, _I_NAME, _I_REWRITTEN, _I_STATE, _I_TS, _KIND,
    _FLOW, _STATE, _TS, _row_json, _run_record, _sha256, check_continues,
)

__all__ = ["MemoryRecorder"]


class MemoryRecorder:
    """Event rows in Python lists: the same interface as ``SQLiteRecorder``, nothing on disk."""

    path = ":memory:"

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self._by_run: dict[str, list[tuple[Any, ...]]] = {}
        self._runs: dict[str, list[Any]] = {}  # run_id -> [flow, state, started, ended, events, first_seq, last_hash]
        self._cursors: dict[str, tuple[int, str]] = {}

    def append(self, row: Sequence[Any], prev_hash: Any = None, hash: str | None = None) -> tuple[int, str | None, str]:
        run_id = row[1]
        run = self._runs.get(run_id)
        last = run[6] if run is not None else None
        if hash is None:
            prev_hash = last
            hash = _sha256(((last or "") + _row_json(row)).encode()).hexdigest()
        else:
            check_continues(self.path, row, last, prev_hash)
        seq = len(self.rows) + 1
        stored = (seq, *row, prev_hash, hash)
        self.rows.append(stored)
        state = row[_STATE] if row[_KIND] == "flow" else None
        if run is None:
            self._by_run[run_id] = [stored]
            self._runs[run_id] = [row[_FLOW], state or "Pending", row[_TS],
                                  row[_TS] if state in FINISHED_TYPES else None, 1, seq, hash]
        else:
            self._by_run[run_id].append(stored)
            run[4] += 1
            run[6] = hash
            if state is not None:
                run[1] = state
                if state in FINISHED_TYPES:
                    run[3] = row[_TS]
        return seq, prev_hash, hash

    def select(self, q: Query) -> list[tuple[Any, ...]]:
        rows: Iterable[tuple[Any, ...]] = self.rows if q.run_id is None else self._by_run.get(q.run_id, ())
        checks = []
        for i, value in ((_I_KIND, q.kind), (_I_KEY, q.key), (_I_NAME, q.name)):
            if value is not None:
                checks.append(lambda r, i=i, v=value: r[i] == v)
        if q.types is not None:
            checks.append(lambda r, t=q.types: r[_I_STATE] in t)
        if q.since is not None:
            checks.append(lambda r, v=q.since: r[_I_TS] >= v)
        if q.until is not None:
            checks.append(lambda r, v=q.until: r[_I_TS] <= v)
        if q.after_seq is not None:
            checks.append(lambda r, v=q.after_seq: r[0] > v)
        if q.until_seq is not None:
            checks.append(lambda r, v=q.until_seq: r[0] <= v)
        if q.rewritten is not None:
            checks.append(lambda r, v=q.rewritten: (r[_I_REWRITTEN] != "[]") is v)
        out = [r for r in rows if all(c(r) for c in checks)] if checks else list(rows)
        return out[: q.limit] if q.limit is not None else out

    def iter_rows(self, q: Query, batch: int = 5000, tail: bool = False) -> Iterator[tuple[Any, ...]]:
        return iter(self.select(q))

    def latest(self, run_id: str, until_seq: int | None = None, until: str | None = None) -> list[tuple[Any, ...]]:
        last: dict[tuple[str, str], tuple[Any, ...]] = {}
        for r in self._by_run.get(run_id, ()):
            if (until_seq is not None and r[0] > until_seq) or (until is not None and r[_I_TS] > until):
                break
            last[(r[_I_KIND], r[_I_KEY])] = r
        return [(r[0], r[4], r[6], r[5], r[7], r[11]) for r in sorted(last.values(), key=lambda r: r[0])]

    def runs(self, flow: str | None = None, types: Iterable[str] | None = None,
             limit: int | None = None, run_id: str | None = None) -> list[RunRecord]:
        types = set(types) if types is not None else None
        out = []
        for rid, (f, state, started, ended, events, first_seq, _) in sorted(
            self._runs.items(), key=lambda kv: -kv[1][5]
        ):
            if (flow is None or f == flow) and (types is None or state in types) and (run_id is None or rid == run_id):
                out.append(_run_record((rid, f, state, started, ended, events)))
        return out[:limit] if limit is not None else out

    def run_chain_ends(self) -> dict[str, tuple[int, str]]:
        return {rid: (r[4], r[6]) for rid, r in self._runs.items()}

    def max_seq(self) -> int:
        return len(self.rows)

    def load_cursor(self, name: str) -> tuple[int, str] | None:
        return self._cursors.get(name)

    def save_cursor(self, name: str, seq: int, filter_text: str, updated: str) -> None:
        self._cursors[name] = (seq, filter_text)

    def close(self) -> None:
        pass
