"""Real processes: several writers at once, and a writer killed with SIGKILL mid-flow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from eventstore import EventStore
from ledger_fixtures import file_digest

WRITER = textwrap.dedent("""
    import os, sys, time
    from eventstore import EventStore
    from statemachine import Flow, task

    path, run_id, n, barrier = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    @task
    def step(x=0):
        time.sleep(0.0005)  # let the other writers in between
        return x + 1

    with Flow("parallel") as flow:
        x = step()
        for _ in range(n - 1):
            x = step(x)
    def wait_for_all():
        open(os.path.join(barrier, run_id), "w").close()
        while len(os.listdir(barrier)) < 4:
            time.sleep(0.005)

    if sys.argv[5] == "create-together":  # all four create the new ledger file at once
        wait_for_all()
        store = EventStore(path)
    else:  # open first, then run the flows together
        store = EventStore(path)
        wait_for_all()
    state = flow.run(store=store, run_id=run_id)
    assert state.is_successful(), state
    store.close()
""")


@pytest.mark.parametrize("start", ["run-together", "create-together"])
def test_four_processes_write_one_ledger_at_once_and_lose_nothing(tmp_path, start):
    path = tmp_path / "shared.db"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"run-{i}", "250", str(barrier), start],
                         stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with EventStore(path) as s:
        events = s.events()
        seqs = [e.seq for e in events]
        assert len(events) == 4 * (2 + 2 * 250)
        assert seqs == sorted(set(seqs))  # unique and increasing
        assert {e.run_id for e in events} == {f"run-{i}" for i in range(4)}
        switches = sum(a.run_id != b.run_id for a, b in zip(events, events[1:]))
        assert switches > 10, "the writers did not interleave: the test proves nothing"
        report = s.verify()
        assert report.ok and report.checked == len(events), report.problems
        for i in range(4):
            record = s.run(f"run-{i}")
            assert record.state == "Success" and record.events == 502 and record.finished
            view = s.rebuild(f"run-{i}")
            assert len(view.tasks) == 250 and view.tasks["step-250"].result == 250


VICTIM = textwrap.dedent("""
    import sys, time
    from eventstore import EventStore
    from statemachine import Flow, task
    from subscribers import subscribe

    @task
    def slow(x=0):
        time.sleep(0.002)
        return x + 1

    with Flow("long") as flow:
        x = slow()
        for _ in range(100000):
            x = slow(x)
    # a listener runs after commit: every seq printed here was committed
    subscribe(lambda e: print(e.seq, flush=True))
    flow.run(store=EventStore(sys.argv[1]), run_id="killed")
""")


def test_a_writer_killed_with_sigkill_leaves_a_ledger_that_opens_and_verifies(tmp_path):
    path = tmp_path / "crash.db"
    proc = subprocess.Popen([sys.executable, "-c", VICTIM, str(path)], stdout=subprocess.PIPE, text=True)
    committed = []
    try:
        while len(committed) < 150:
            line = proc.stdout.readline()
            assert line, "the writer died before it was killed"
            committed.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    before = file_digest(path)
    with EventStore(path) as s:
        report = s.verify()
        assert report.ok, report.problems
        stored = {e.seq for e in s.history("killed")}
        assert set(committed) <= stored
        record = s.run("killed")
        assert record.state == "Running" and record.ended is None and not record.finished
        assert record.events == len(stored) >= 150
        assert s.rebuild("killed").state.is_running()
    assert file_digest(path) == before  # reading the crashed ledger did not rewrite it
    # and the ledger takes new runs after the crash
    from statemachine import Flow, task

    @task
    def again():
        return "ok"

    with Flow("after") as flow:
        again()
    with EventStore(path) as s:
        assert flow.run(store=s, run_id="after").is_successful()
        assert s.verify().ok
