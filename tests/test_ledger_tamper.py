"""verify(): the per-run hash chains catch changed, deleted, inserted and reordered events."""

from __future__ import annotations

import pytest

from eventstore import EventStore, Report
from ledger_fixtures import chain as ledger_chain, raw


def chain():
    """Four tasks in a line: enough events to tamper with in the middle."""
    return ledger_chain(4)


@pytest.fixture
def ledger(tmp_path):
    """A ledger file with two runs (10 events each), closed."""
    path = tmp_path / "l.db"
    with EventStore(path) as s:
        chain().run(store=s, run_id="a")
        chain().run(store=s, run_id="b")
    return path


def report_of(path, run_id=None) -> Report:
    with EventStore(path) as s:
        return s.verify(run_id)


def problems(path, run_id=None):
    return [(p.run_id, p.seq, p.what) for p in report_of(path, run_id).problems]


def test_an_intact_ledger_verifies(store):
    chain().run(store=store, run_id="a")
    chain().run(store=store, run_id="b")
    report = store.verify()
    assert report.ok and report.checked == 20 and report.problems == [] and report.runs == 2
    assert store.verify("a").checked == 10
    assert "ok" in str(report)


def test_a_changed_event_is_found(ledger):
    conn = raw(ledger)
    conn.execute("""UPDATE events SET new_state = replace(new_state, '"result":2', '"result":99') WHERE seq = 5""")
    conn.close()
    report = report_of(ledger)
    assert not report.ok and report.checked == 20
    assert problems(ledger) == [("a", 5, "changed")]
    assert "run a seq 5" in str(report.problems[0]) and "changed" in str(report.problems[0])
    assert report_of(ledger, "b").ok


def test_a_changed_state_column_is_found(ledger):
    conn = raw(ledger)
    conn.execute("UPDATE events SET state = 'Failed' WHERE seq = 20")
    conn.close()
    assert problems(ledger) == [("b", 20, "changed")]


def test_a_changed_event_with_a_recomputed_hash_breaks_the_chain_after_it(ledger):
    from eventstore.mapper import COLUMNS, chain_hash

    conn = raw(ledger)
    row = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM events WHERE seq = 3").fetchone()
    content = list(row[1:15])
    content[10] = content[10].replace("Task run succeeded.", "All fine.")
    assert content[10] != row[11]
    conn.execute("UPDATE events SET new_state = ?, hash = ? WHERE seq = 3", (content[10], chain_hash(row[15], content, 3)))
    conn.close()
    assert problems(ledger) == [("a", 4, "chain broken")]


def test_a_deleted_event_is_found(ledger):
    conn = raw(ledger)
    conn.execute("DELETE FROM events WHERE seq = 6")
    conn.close()
    found = problems(ledger)
    assert ("a", 7, "chain broken") in found and ("a", 10, "count") in found
    assert report_of(ledger).checked == 19


def test_events_deleted_from_the_end_of_a_run_are_found(ledger):
    conn = raw(ledger)
    conn.execute("DELETE FROM events WHERE seq IN (19, 20)")
    conn.close()
    assert problems(ledger) == [("b", 18, "count")]


def test_an_inserted_event_is_found(ledger):
    conn = raw(ledger)
    conn.execute(
        "INSERT INTO events (event_id, run_id, timestamp, kind, name, key, flow, attempt, state, old_state, "
        "new_state, proposed_state, rewritten_by, actor, prev_hash, hash) SELECT 'x', run_id, timestamp, kind, "
        "name, key, flow, attempt, state, old_state, new_state, proposed_state, rewritten_by, actor, prev_hash, "
        "hash FROM events WHERE seq = 3")
    conn.close()
    # the runs summary counts the row (schema 3: the database keeps it), the chain does not take it
    assert sorted(problems(ledger)) == [("a", 21, "chain broken"), ("a", 21, "changed")]


def test_an_event_of_an_unknown_run_is_found(ledger):
    conn = raw(ledger)
    conn.execute("UPDATE events SET run_id = 'ghost' WHERE seq = 20")
    conn.close()
    found = problems(ledger)
    assert ("ghost", 20, "inserted") in found and ("b", 19, "count") in found


def test_reordered_events_are_found(ledger):
    conn = raw(ledger)
    conn.execute("UPDATE events SET seq = -1 WHERE seq = 3")
    conn.execute("UPDATE events SET seq = 3 WHERE seq = 4")
    conn.execute("UPDATE events SET seq = 4 WHERE seq = -1")
    conn.close()
    found = problems(ledger)
    assert ("a", 3, "chain broken") in found and ("a", 4, "chain broken") in found
    assert report_of(ledger, "b").ok


def test_tampering_in_memory_is_found_too():
    s = EventStore(":memory:")
    chain().run(store=s, run_id="a")
    rec = s.recorder
    changed = list(rec.rows[2])
    changed[11] = changed[11].replace("succeeded", "failed")
    rec.rows[2] = tuple(changed)
    report = s.verify()
    assert not report.ok and [(p.run_id, p.seq, p.what) for p in report.problems] == [("a", 3, "changed")]
