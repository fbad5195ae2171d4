"""Ctrl-C and SIGTERM during flow.run(): every unfinished task and the flow end Cancelled, in the ledger.

Real child processes are signalled at random moments (in task bodies, in
commits, on the local and the thread executor, through the library and the
CLI); every run must end Cancelled with a valid chain and the signal's exit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ending_fixtures import TASKS, start_child, wait_for_line, write_flow
from eventstore import EventStore
from statemachine import Flow, task
from statemachine.executors import ThreadExecutor
from statemachine.states import Cancelled, Success

#: (signal, via, executor) of each trial: 24 trials, every combination three times.
TRIALS = [(sig, via, ex) for sig in (signal.SIGINT, signal.SIGTERM) for via in ("library", "cli")
          for ex in ("local", "threads")] * 3
EXPECTED_EXIT = {
    (signal.SIGINT, "library"): -signal.SIGINT,  # an uncaught KeyboardInterrupt ends Python by SIGINT
    (signal.SIGINT, "cli"): 130,
    (signal.SIGTERM, "library"): 143,
    (signal.SIGTERM, "cli"): 143,
}


def test_runs_signalled_at_random_moments_all_end_cancelled_with_a_valid_chain(tmp_path):
    write_flow(tmp_path)
    db = tmp_path / "trials.db"
    EventStore(db).close()  # created once, before the writers race for it
    rng = random.Random(1234)
    delays = [rng.choice([rng.uniform(0, 0.02), rng.uniform(0, 0.5)]) for _ in TRIALS]

    def trial(i: int) -> tuple[int, int]:
        sig, via, executor = TRIALS[i]
        proc = start_child(tmp_path, db, f"trial-{i}", via=via, executor=executor)
        try:
            wait_for_line(proc, "started")
            time.sleep(delays[i])
            proc.send_signal(sig)
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return i, proc.returncode

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = dict(pool.map(trial, range(len(TRIALS))))

    with EventStore(db) as store:
        for i, (sig, via, executor) in enumerate(TRIALS):
            assert codes[i] == EXPECTED_EXIT[(sig, via)], (i, TRIALS[i], codes[i])
            view = store.rebuild(f"trial-{i}")
            assert isinstance(view.state, Cancelled), (i, view.state)
            assert len(view.tasks) == TASKS
            assert all(s.is_finished() for s in view.tasks.values()), (i, view.tasks)
            assert any(isinstance(s, Cancelled) for s in view.tasks.values()) or all(
                isinstance(s, Success) for s in view.tasks.values())
            why = "SIGINT (Ctrl-C)" if sig == signal.SIGINT else "SIGTERM"
            assert view.state.message == f"Flow run was cancelled: {why} received."
        report = store.verify()
        assert report.ok, report.problems
        assert store.orphans() == []  # every writer let go of a finished run


SLOW_CANCEL = '''
import time
from statemachine import Flow, task
from statemachine.executors import ThreadExecutor


def announce(obj, old, new):
    if new.is_running():
        print("started", flush=True)
    if new.is_cancelled():
        print("cancelling", flush=True)
        time.sleep(30)  # a slow handler: a second Ctrl-C must not wait for it


@task(state_handlers=[announce])
def sleepy():
    time.sleep(30)


with Flow("stubborn", state_handlers=[announce]) as flow:
    sleepy()
'''


@pytest.mark.parametrize("via", ["library", "cli"])
def test_a_second_ctrl_c_stops_at_once_and_what_was_committed_stays_consistent(tmp_path, via):
    flow_file = tmp_path / "stubborn.py"
    flow_file.write_text(SLOW_CANCEL.replace("stubborn", "stubborn"))
    (tmp_path / "trialflow.py").write_text(SLOW_CANCEL)
    db = tmp_path / "twice.db"
    proc = start_child(tmp_path, db, "twice", via=via)
    try:
        wait_for_line(proc, "started")
        wait_for_line(proc, "started")  # the flow, then the task
        proc.send_signal(signal.SIGINT)
        wait_for_line(proc, "cancelling")
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < 5, f"the second Ctrl-C took {took:.1f} s to stop the run"
    assert proc.returncode == (130 if via == "cli" else -signal.SIGINT)
    with EventStore(db) as store:
        assert store.verify().ok
        assert store.run("twice").state == "Running"  # stopped before the flow's Cancelled was committed
        orphans = store.orphans()
        assert [o.run_id for o in orphans] == ["twice"]
        assert f"writer pid {proc.pid} on host " in orphans[0].reason and " is gone; " in orphans[0].reason
        reaped = store.reap()
        assert [r.run_id for r in reaped] == ["twice"]
        assert store.rebuild("twice").state.is_failed()
        assert store.verify().ok


@pytest.mark.parametrize("executor", [None, ThreadExecutor(max_workers=2)], ids=["local", "threads"])
def test_a_task_raising_keyboardinterrupt_cancels_the_run_and_the_interrupt_goes_on(executor):
    seen = []

    @task
    def first():
        return 1

    @task
    def stop(x):
        raise KeyboardInterrupt

    @task
    def never(x):
        seen.append("ran")

    with Flow("ki", state_handlers=[lambda f, old, new: seen.append(type(new).__name__)]) as flow:
        never(stop(first()))
    store = EventStore(":memory:")
    with pytest.raises(KeyboardInterrupt):
        flow.run(store=store, run_id="ki", executor=executor)
    view = store.rebuild("ki")
    assert isinstance(view.state, Cancelled)
    assert view.state.message == "Flow run was cancelled: a task raised KeyboardInterrupt."
    assert {k: type(s).__name__ for k, s in view.tasks.items()} == {
        "first-1": "Success", "stop-1": "Cancelled", "never-1": "Cancelled"}
    assert view.tasks["never-1"].message == "Task run was cancelled before it ran: a task raised KeyboardInterrupt."
    assert "ran" not in seen and seen[-1] == "Cancelled"  # the flow's handler saw its Cancelled
    assert store.verify().ok


def _handlers():
    """The SIGINT and SIGTERM handlers in place now."""
    return {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}


def _looking_flow(during):
    """A flow whose one task copies the signal handlers in place while it runs into ``during``."""

    @task
    def look():
        during.update(_handlers())

    with Flow("look") as flow:
        look()
    return flow


def test_signal_handlers_are_installed_only_during_the_run_and_restored_after():
    before, during = _handlers(), {}
    flow = _looking_flow(during)
    assert flow.run(store=EventStore(":memory:")).is_successful()
    assert all(during[s] != before[s] for s in before)
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_flow_run_outside_the_main_thread_leaves_the_signal_handlers_alone():
    before, during = _handlers(), {}
    flow = _looking_flow(during)
    result = []
    worker = threading.Thread(target=lambda: result.append(flow.run(store=EventStore(":memory:"))))
    worker.start()
    worker.join()
    assert result[0].is_successful()
    assert during == before


def test_an_ignored_signal_stays_ignored_during_the_run():
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        @task
        def poke():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            return "still here"

        with Flow("ignored") as flow:
            poke()
        state = flow.run(store=EventStore(":memory:"))
        assert state.is_successful()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_programs_own_sigterm_handler_is_called_after_the_run_was_cancelled():
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    store = EventStore(":memory:")
    try:
        @task
        def poke():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)

        with Flow("polite") as flow:
            poke()
        state = flow.run(store=store, run_id="polite")  # the handler returned: so does flow.run()
        assert isinstance(state, Cancelled) and state.context["run_id"] == "polite"
        assert calls == [signal.SIGTERM]
        assert isinstance(state.result[flow.get_task("poke")], Cancelled)
        assert [type(e.new_state).__name__ for e in store.history("polite")] == [
            "Running", "Running", "Cancelled", "Cancelled"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigint_in_process_raises_a_plain_keyboardinterrupt_after_the_ledger_has_cancelled():
    store = EventStore(":memory:")

    @task
    def poke():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)

    with Flow("poked") as flow:
        poke()
    with pytest.raises(KeyboardInterrupt) as info:
        flow.run(store=store, run_id="poked")
    assert type(info.value) is KeyboardInterrupt  # so an uncaught one ends Python as Ctrl-C always does
    assert isinstance(store.rebuild("poked").state, Cancelled)


DASK_RUNNER = '''
import sys
import time

from eventstore import EventStore
from statemachine import Flow, task
from statemachine.executors import DaskExecutor


@task
def stubborn():
    print("body", flush=True)
    time.sleep(120)


if __name__ == "__main__":
    with Flow("dask-slow") as flow:
        stubborn()
    executor = DaskExecutor(cluster_kwargs={"n_workers": 1, "threads_per_worker": 1, "processes": sys.argv[3] == "processes"})
    flow.run(store=EventStore(sys.argv[1]), run_id=sys.argv[2], executor=executor)
'''


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_an_interrupted_dask_run_exits_promptly_without_waiting_for_running_bodies(tmp_path, workers):
    runner = tmp_path / "dask_runner.py"
    runner.write_text(DASK_RUNNER)
    db = tmp_path / "dask.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen([sys.executable, str(runner), str(db), "dask-1", workers], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        wait_for_line(proc, "body")  # the body runs on a worker (its print reaches the child's stdout)
        time.sleep(0.2)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGINT
    assert took < 8, f"the interrupted Dask run took {took:.1f} s to exit (its body sleeps 120 s)"
    with EventStore(db) as store:
        view = store.rebuild("dask-1")
        assert isinstance(view.state, Cancelled) and all(isinstance(s, Cancelled) for s in view.tasks.values())
        assert store.verify().ok
