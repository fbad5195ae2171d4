"""Stress: 8 writer processes x 1,000 tasks into ONE ledger, on PostgreSQL and on SQLite.

Each process runs its own flow (a chain of 1,000 no-op tasks, no state
handlers) under a run id of its own; they start together behind a barrier so
their appends interleave. Afterwards: every run has exactly its 2 + 2 x 1,000
events and ended Success, every seq is unique, and the whole ledger verifies.
The PostgreSQL case takes the server from ``STATELEDGER_TEST_PG`` (the
``pg_url`` fixture: a schema of its own; skipped when unset, failed with CI).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap

import pytest

from eventstore import EventStore

WRITERS, TASKS = 8, 1000
EVENTS_PER_RUN = 2 + 2 * TASKS  # the flow's Running and Success, each task's Running and Success

WRITER = textwrap.dedent("""
    import os, sys, time
    from eventstore import EventStore
    from statemachine import Flow, task

    target, run_id, n, barrier, writers = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])

    @task
    def step(x=0):
        return x + 1

    with Flow("stress") as flow:
        x = step()
        for _ in range(n - 1):
            x = step(x)
    store = EventStore(target)
    open(os.path.join(barrier, run_id), "w").close()
    while len(os.listdir(barrier)) < writers:  # every writer is open: start together
        time.sleep(0.005)
    state = flow.run(store=store, run_id=run_id)
    assert state.is_successful(), state
    store.close()
""")


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path) -> str:
    """One ledger for every writer: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return str(tmp_path / "stress.db")
    return request.getfixturevalue("pg_url")


def test_eight_writer_processes_of_a_thousand_tasks_lose_nothing(target, tmp_path):
    EventStore(target).close()  # create the ledger once, before the writers race
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    run_ids = [f"stress-{i}" for i in range(WRITERS)]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, target, run_id, str(TASKS), str(barrier), str(WRITERS)],
                              stderr=subprocess.PIPE, text=True)
             for run_id in run_ids]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    with EventStore(target) as store:
        events = store.events()
        seqs = [e.seq for e in events]
        assert len(events) == WRITERS * EVENTS_PER_RUN
        assert len(set(seqs)) == len(seqs)
        assert {e.run_id for e in events} == set(run_ids)
        switches = sum(a.run_id != b.run_id for a, b in itertools.pairwise(events))
        assert switches > WRITERS, "the writers did not interleave: the test proves nothing"
        runs = {r.run_id: r for r in store.runs()}
        assert set(runs) == set(run_ids)
        for run_id in run_ids:
            assert len(store.history(run_id)) == EVENTS_PER_RUN
            assert runs[run_id].state == "Success" and runs[run_id].events == EVENTS_PER_RUN, runs[run_id]
        report = store.verify()
        assert report.ok and report.checked == len(events), report.problems
