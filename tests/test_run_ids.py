"""One run id, one run: reusing an id is refused, and of two processes racing for a new id exactly one wins."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from eventstore import EventStore, LedgerError, RunExistsError
from eventstore.cli import main
from owner_fixtures import target
from statemachine import Flow, task


def _flow(name="ids"):
    @task
    def one():
        return 1

    with Flow(name) as flow:
        one()
    return flow


def test_running_a_flow_again_under_an_existing_run_id_is_refused_and_writes_nothing(store):
    flow = _flow()
    assert flow.run(store=store, run_id="nightly-1").is_successful()
    end = store.max_seq()
    with pytest.raises(RunExistsError) as info:
        flow.run(store=store, run_id="nightly-1")
    assert isinstance(info.value, LedgerError)
    assert info.value.run_id == "nightly-1"
    message = str(info.value)
    assert message.startswith("Run 'nightly-1' already exists in ledger ")
    assert "(flow ids, Success, started " in message
    assert "give a new one, or continue that run with flow.run(restart='nightly-1')" in message
    assert store.max_seq() == end and len(store.history("nightly-1")) == 4


def test_the_cli_refuses_a_run_id_in_use_with_exit_2_and_one_line(tmp_path):
    flow_file = tmp_path / "ids.py"
    flow_file.write_text("from statemachine import Flow, task\n\n@task\ndef one():\n    return 1\n\n"
                         "with Flow('ids') as flow:\n    one()\n")
    db = tmp_path / "cli.db"
    runner = CliRunner()
    first = runner.invoke(main, ["run", str(flow_file), "--run-id", "nightly-1", "--db", str(db)])
    assert first.exit_code == 0, first.output
    again = runner.invoke(main, ["run", str(flow_file), "--run-id", "nightly-1", "--db", str(db)])
    assert again.exit_code == 2
    assert again.stdout == ""
    line, = again.stderr.splitlines()
    assert line.startswith(f"stateledger: error: Run 'nightly-1' already exists in ledger {db} (flow ids, Success")
    assert "(stateledger restart nightly-1 FILE)" in line


RACER = '''
import sys, time, os
from statemachine import Flow, task
from eventstore import EventStore, RunExistsError

@task
def one():
    return os.getpid()

with Flow("race") as flow:
    one()
store = EventStore(sys.argv[1])
while not os.path.exists(sys.argv[3]):
    time.sleep(0.001)
try:
    flow.run(store=store, run_id=sys.argv[2])
except RunExistsError:
    sys.exit(3)
'''


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_processes_racing_for_one_new_run_id_exactly_one_wins(tmp_path, request, kind):
    db = target(kind, tmp_path, request, "race.db")
    EventStore(db).close()
    go = tmp_path / "go"
    rounds = 4
    procs = {r: [subprocess.Popen([sys.executable, "-c", RACER, str(db), f"race-{r}", str(go)])
                 for _ in range(3)] for r in range(rounds)}
    time.sleep(1.0)  # let every racer import and wait at the line
    go.touch()
    for r, racers in procs.items():
        codes = sorted(p.wait(timeout=60) for p in racers)
        assert codes == [0, 3, 3], (r, codes)
    with EventStore(db) as store:
        for r in range(rounds):
            events = store.history(f"race-{r}")
            assert len(events) == 4 and len({e.actor for e in events}) == 1
        assert store.verify().ok


def test_threads_racing_for_one_new_run_id_exactly_one_wins(tmp_path, store):
    flow = _flow("threads")
    start = threading.Barrier(8)
    outcomes = []

    def race():
        start.wait()
        try:
            outcomes.append(flow.run(store=store, run_id="shared").is_successful())
        except RunExistsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, outcomes)) == ["True"] + ["refused"] * 7
    assert len(store.history("shared")) == 4
    assert os.getpid() == store.recorder.writers(["shared"])[0].pid


def test_a_restart_continues_its_run_id_and_takes_the_claim_over(store):
    calls = []

    @task
    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt  # the first attempt is interrupted: the run ends Cancelled

    with Flow("again") as flow:
        flaky()
    with pytest.raises(KeyboardInterrupt):
        flow.run(store=store, run_id="again-1")
    assert store.rebuild("again-1").state.is_cancelled()
    with pytest.raises(RunExistsError):
        flow.run(store=store, run_id="again-1")
    assert flow.run(store=store, restart="again-1").is_successful()
    writer, = store.recorder.writers(["again-1"])
    assert writer.pid == os.getpid() and writer.released is not None
    assert store.verify().ok
