"""Trust meets restarts and marks: verify, checkpoints and the fast path after both, on every recorder."""

from __future__ import annotations

import hashlib
import os
import stat

from eventstore import EventStore
from eventstore.mapper import hashed_content, row_json
from eventstore.protocol import Query
from ledger_fixtures import file_digest, raw
from statemachine import Flow, task
from trust_fixtures import downgrade_to_schema_1, rechain, sl


def etl(broken: dict) -> Flow:
    """extract -> load; ``broken["load"]`` makes load raise, so the flow fails."""

    @task
    def extract():
        return [1, 2, 3]

    @task
    def load(rows):
        if broken.get("load"):
            raise ConnectionError("warehouse offline")
        return sum(rows)

    with Flow("etl") as flow:
        load(extract())
    return flow


def restarted_and_marked(store) -> tuple[list, list]:
    """r1 fails, is restarted and succeeds; r2 fails and its load is marked Success by hand.

    Returns the checkpoints taken after each step and the flow's finish times of r2.
    """
    broken = {"load": True}
    flow = etl(broken)
    checkpoints = []
    assert flow.run(store=store, run_id="r1").is_failed()
    checkpoints.append(store.checkpoint())
    broken["load"] = False
    assert flow.run(store=store, restart="r1").is_successful()
    checkpoints.append(store.checkpoint())
    broken["load"] = True
    assert flow.run(store=store, run_id="r2").is_failed()
    ended = store.run("r2").ended
    event = store.mark("r2", "load-1", "Success", reason="loaded by hand", by="alice")
    assert event.reason == "loaded by hand"
    checkpoints.append(store.checkpoint())
    return checkpoints, [ended, store.run("r2").ended]


def test_verify_is_ok_after_a_restart(store):
    broken = {"load": True}
    flow = etl(broken)
    flow.run(store=store, run_id="r1")
    first_end = store.run("r1").ended
    broken["load"] = False
    assert flow.run(store=store, restart="r1").is_successful()
    run = store.run("r1")
    assert run.state == "Success" and run.ended is not None and run.ended > first_end
    report = store.verify()
    assert report.ok, report.problems
    assert report.checked == len(store.history("r1")) and store.verify("r1").ok


def test_verify_is_ok_while_a_restarted_run_is_open_again(store):
    """Between the restart's Scheduled and its end the summary says 'not ended': so must the rebuild."""
    broken, seen = {"load": True}, []

    @task
    def extract():
        return [1, 2, 3]

    @task
    def load(rows):
        if broken["load"]:
            raise ConnectionError("warehouse offline")
        seen.append((store.run("r1").ended, store.verify()))
        return sum(rows)

    with Flow("etl") as flow:
        load(extract())
    assert flow.run(store=store, run_id="r1").is_failed()
    broken["load"] = False
    assert flow.run(store=store, restart="r1").is_successful()
    ((ended, report),) = seen
    assert ended is None and report.ok, report.problems
    assert store.run("r1").ended is not None and store.verify().ok


def test_verify_is_ok_after_a_mark_and_the_mark_keeps_the_first_end(store):
    etl({"load": True}).run(store=store, run_id="r2")
    ended = store.run("r2").ended
    store.mark("r2", "load-1", "Success", reason="loaded by hand", by="alice")
    run = store.run("r2")
    assert run.state == "Success" and run.ended == ended  # a finished flow event sets ended only if empty
    assert store.history("r2")[-1].kind == "flow"  # the flow went Failed -> Success: two finished events
    report = store.verify()
    assert report.ok, report.problems
    assert store.verify("r2").ok


def test_checkpoints_taken_around_a_restart_and_a_mark_all_verify(store):
    checkpoints, (before, after) = restarted_and_marked(store)
    assert [c.seq for c in checkpoints] == sorted(c.seq for c in checkpoints)
    assert before == after
    report = store.verify(checkpoints=checkpoints)
    assert report.ok and report.checkpoints == 3, report.problems
    assert store.verify("r2", checkpoints=checkpoints).ok and store.verify("r1", checkpoints=checkpoints).ok
    last = store.checkpoint()
    assert last.seq == checkpoints[-1].seq and last.root == checkpoints[-1].root


def test_a_reason_rewritten_consistently_is_caught_by_the_checkpoint(tmp_path):
    path = tmp_path / "l.db"
    with EventStore(path) as store:
        checkpoints, _ = restarted_and_marked(store)
        marked = [e for e in store.events() if e.reason is not None]
    assert marked
    conn = raw(path)
    conn.execute("UPDATE events SET reason = 'nobody asked' WHERE seq = ?", (marked[0].seq,))
    conn.close()
    with EventStore(path) as store:
        assert [(p.seq, p.what) for p in store.verify().problems] == [(marked[0].seq, "changed")]
    rechain(path)  # every hash recomputed with the reason included, the runs table rebuilt
    with EventStore(path) as store:
        assert store.verify().ok is False  # the checkpoint recorded in the ledger still disagrees
        report = store.verify(checkpoints=checkpoints[-1:])
        assert not report.ok and {p.what for p in report.problems} == {"checkpoint"}


def test_the_sqlite_fast_path_hashes_a_reason_as_append_did(tmp_path):
    """verify_rows' json_array text is exactly the text the hash was made from, with and without a reason."""
    with EventStore(tmp_path / "l.db") as store:
        restarted_and_marked(store)
        rows = {r.seq: r for r in store.recorder.select(Query())}
        fast = list(store.recorder.verify_rows(Query()))
        assert len(fast) == len(rows) and any(r.reason is not None for r in rows.values())
        for seq, *_, text in fast:
            row = rows[seq]
            assert text == (row.prev_hash or "") + row_json((seq, *hashed_content(row)))
            assert hashlib.sha256(text.encode()).hexdigest() == row.hash


def test_the_cli_verifies_a_restarted_and_marked_ledger_read_only_with_its_checkpoints(tmp_path):
    path = tmp_path / "l.db"
    with EventStore(path) as store:
        checkpoints, _ = restarted_and_marked(store)
    files = []
    for i, cp in enumerate(checkpoints):
        files += ["--checkpoint", str(tmp_path / f"cp{i}.json")]
        (tmp_path / f"cp{i}.json").write_text(cp.to_json())
    before = file_digest(path)
    done = sl("verify", *files, db=path)
    assert done.returncode == 0 and done.stdout.startswith("OK"), done.stdout + done.stderr
    done = sl("verify", "r2", *files, db=path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert file_digest(path) == before and not os.path.exists(str(path) + "-wal")  # reading never writes
    done = sl("checkpoint", "-o", str(tmp_path / "cp.json"), db=path)  # checkpoint writes: it is recorded
    assert done.returncode == 0 and (tmp_path / "cp.json").exists(), done.stderr


def test_a_read_only_schema_1_ledger_is_verified_by_the_cli_and_left_alone(tmp_path):
    folder = tmp_path / "archive"
    folder.mkdir()
    path = folder / "old.db"
    with EventStore(path) as store:
        etl({"load": True}).run(store=store, run_id="old")
    downgrade_to_schema_1(path)
    before = file_digest(path)
    os.chmod(path, stat.S_IRUSR)
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    try:
        done = sl("verify", db=path, cwd=tmp_path)
        assert done.returncode == 0 and done.stdout.startswith("OK"), done.stdout + done.stderr
        shown = sl("show", "old", db=path, cwd=tmp_path)
        assert shown.returncode == 0 and "ConnectionError" in shown.stdout, shown.stderr
    finally:
        os.chmod(folder, stat.S_IRWXU)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    assert file_digest(path) == before and sorted(p.name for p in folder.iterdir()) == ["old.db"]
