"""Executors: task bodies at once on threads or Dask, every transition still in the flow-run thread."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from eventstore import EventStore
from statemachine import Flow, Task, task
from statemachine.errors import ExecutorError, ExecutorSpecError, TaskTimeoutSignal
from statemachine.executors import DaskExecutor, LocalExecutor, ThreadExecutor, executor_from_spec
from statemachine.states import Failed, Retrying, Success, TimedOut
from statemachine.testing import ListLedger

from executor_fixtures import SharedList
from state_checks import exact

ROOT = Path(__file__).resolve().parent.parent


def trails(ledger):
    """Each task key's states in commit order."""
    out: dict[str, list[str]] = {}
    for e in ledger.events:
        if e.kind == "task":
            out.setdefault(e.key, []).append(type(e.new_state).__name__)
    return out


def concurrent_executor(kind, request):
    if kind == "threads":
        return ThreadExecutor(max_workers=4)
    return DaskExecutor(address=request.getfixturevalue("dask_cluster").scheduler_address)


# --- concurrency is real ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["threads", "dask"])
def test_two_tasks_meet_at_a_barrier_so_they_run_at_once(kind, request):
    """Each task waits at a two-party barrier: sequential execution would time out (BrokenBarrierError)."""
    barrier = SharedList([threading.Barrier(2, timeout=10)])

    @task
    def meet(i):
        barrier[0].wait()
        return i

    with Flow("barrier") as flow:
        a, b = meet(1), meet(2)
    state = flow.run(store=ListLedger(), executor=concurrent_executor(kind, request))
    assert state.is_successful(), state.result
    assert [state.result[t].result for t in (a, b)] == [1, 2]


def test_ready_tasks_start_as_soon_as_their_upstreams_finish():
    """A slow branch does not hold back a fast chain beside it."""
    ends = SharedList()

    @task
    def slow():
        time.sleep(0.6)
        ends.append("slow")

    @task
    def fast(x=None):
        ends.append("fast")

    with Flow("branches") as flow:
        slow()
        fast(fast(fast()))
    state = flow.run(store=ListLedger(), executor=ThreadExecutor(max_workers=2))
    assert state.is_successful()
    assert list(ends) == ["fast", "fast", "fast", "slow"]


def test_sleepy_tasks_overlap_on_threads():
    @task
    def nap(i):
        time.sleep(0.1)
        return i

    with Flow("sleepy") as flow:
        naps = [nap(i) for i in range(16)]
    t0 = time.monotonic()
    state = flow.run(store=ListLedger(), executor=ThreadExecutor(max_workers=16))
    assert time.monotonic() - t0 < 1.0  # 1.6 s one after another
    assert [state.result[t].result for t in naps] == list(range(16))


# --- the same history on every executor ------------------------------------------------


def wide_and_diamond():
    @task
    def src():
        return 1

    @task
    def inc(x):
        return x + 1

    @task
    def total(a, b):
        return a + b

    with Flow("shapes") as flow:
        top = src()
        left, right = inc(top), inc(top)
        bottom = total(a=left, b=right)
        wide = [inc(bottom) for _ in range(12)]
    return flow, bottom, wide


def test_wide_and_diamond_flows_have_the_same_history_shape_on_every_executor(executor):
    flow, bottom, wide = wide_and_diamond()
    ledger = ListLedger()
    state = flow.run(store=ledger, executor=executor)
    assert exact(state) == Success("All reference tasks succeeded.", result=state.result)
    assert state.result[bottom].result == 4 and {state.result[t].result for t in wide} == {5}
    assert trails(ledger) == {key: ["Running", "Success"] for key in (flow.key_of(t) for t in flow.ordered_tasks())}
    kinds = [e.kind for e in ledger.events]
    assert kinds[0] == kinds[-1] == "flow" and Counter(kinds) == {"flow": 2, "task": 32}
    seqs = {}
    for e in ledger.events:  # an upstream task's Success commits before its downstream task starts
        seqs.setdefault(e.key, []).append(e.seq)
    for t in flow.ordered_tasks():
        for up in flow.upstream_tasks(t):
            assert seqs[flow.key_of(up)][-1] < seqs[flow.key_of(t)][0]


def test_handlers_and_listeners_run_in_the_flow_run_thread(executor):
    threads = SharedList()
    bodies = SharedList()

    def handler(obj, old, new):
        threads.append(threading.current_thread())

    @task(state_handlers=[handler])
    def work(i):
        bodies.append(i)
        return i

    with Flow("where", state_handlers=[handler]) as flow:
        for i in range(4):
            work(i)
    flow.run(store=ListLedger(), executor=executor)
    assert sorted(bodies) == [0, 1, 2, 3]
    assert len(threads) == 2 + 4 * 2 and set(threads) == {threading.current_thread()}


# --- failing, retrying, timing out on each executor --------------------------------------


def test_failing_retrying_and_timing_out_tasks(executor):
    calls = SharedList()

    @task
    def broken():
        raise ValueError("broken")

    @task(max_retries=2, retry_delay=0.2)
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("again")
        return "third time"

    @task(timeout=0.3)
    def stuck():
        time.sleep(1.5)

    @task
    def quick(i):
        return i

    with Flow("trouble") as flow:
        b, f, s = broken(), flaky(), stuck()
        q = [quick(i) for i in range(3)]
    ledger = ListLedger()
    t0 = time.monotonic()
    state = flow.run(store=ledger, executor=executor)
    elapsed = time.monotonic() - t0
    assert exact(state.result[b]) == Failed("Error during execution of task: ValueError('broken')", result=state.result[b].result)
    assert exact(state.result[f]) == Success("Task run succeeded.", result="third time")
    assert exact(state.result[s]) == TimedOut("Task timed out during execution.", result=TaskTimeoutSignal())
    assert [state.result[t].result for t in q] == [0, 1, 2]
    assert trails(ledger)["flaky-1"] == [
        "Running", "Failed", "Retrying", "Running", "Failed", "Retrying", "Running", "Success"]
    assert [e.attempt for e in ledger.events if e.key == "flaky-1"] == [1, 1, 1, 2, 2, 2, 3, 3]
    assert trails(ledger)["stuck-1"] == ["Running", "TimedOut"]
    assert elapsed >= 0.4  # two retry delays
    assert elapsed < 1.4  # the timed-out body (1.5 s) was not waited for


def test_a_retry_waiting_for_its_delay_blocks_no_other_task():
    """While one task waits 0.8 s to retry, a 0.3 s task starts and ends on the pool."""
    order = SharedList()

    @task(max_retries=1, retry_delay=0.8)
    def later():
        order.append("later")
        if order.count("later") == 1:
            raise RuntimeError("not yet")

    @task
    def gate():
        time.sleep(0.05)

    @task
    def meanwhile(x):
        time.sleep(0.3)
        order.append("meanwhile")

    with Flow("delays") as flow:
        later()
        meanwhile(gate())
    ledger = ListLedger()
    state = flow.run(store=ledger, executor=ThreadExecutor(max_workers=2))
    assert state.is_successful()
    assert list(order) == ["later", "meanwhile", "later"]
    retry = next(e for e in ledger.events if isinstance(e.new_state, Retrying))
    rerun = [e for e in ledger.events if e.key == "later-1" and e.attempt == 2][0]
    assert 0.8 <= (rerun.timestamp - retry.timestamp).total_seconds() < 1.2


def test_a_timed_out_dask_future_is_cancelled(dask_cluster):
    @task(timeout=0.2)
    def stuck():
        time.sleep(1.0)

    with Flow("cancel") as flow:
        stuck()
    state = flow.run(store=ListLedger(), executor=DaskExecutor(address=dask_cluster.scheduler_address))
    assert exact(state.result[flow.get_task("stuck")]) == TimedOut("Task timed out during execution.", result=TaskTimeoutSignal())
    deadline = time.monotonic() + 5
    while any(str(k).startswith("stuck-1") for k in dask_cluster.scheduler.tasks) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(str(k).startswith("stuck-1") for k in dask_cluster.scheduler.tasks)


# --- what cannot travel to Dask ---------------------------------------------------------


def test_a_result_that_cannot_be_serialised_fails_the_task_on_dask(dask_cluster):
    @task
    def locked():
        return threading.Lock()

    @task
    def fine():
        return "ok"

    with Flow("pickles") as flow:
        bad, good = locked(), fine()
    state = flow.run(store=ListLedger(), executor=DaskExecutor(address=dask_cluster.scheduler_address))
    assert exact(state.result[good]) == Success("Task run succeeded.", result="ok")
    message = state.result[bad].message
    assert type(state.result[bad]) is Failed
    assert "Task locked-1 ran on the Dask cluster but its result lock" in message
    assert "cannot be serialised to come back" in message


def test_a_function_that_cannot_be_serialised_fails_the_task_on_dask(dask_cluster):
    lock = threading.Lock()

    @task
    def holds_a_lock():
        with lock:
            return 1

    with Flow("pickles") as flow:
        t = holds_a_lock()
    state = flow.run(store=ListLedger(), executor=DaskExecutor(address=dask_cluster.scheduler_address))
    assert type(state.result[t]) is Failed
    assert "Task holds_a_lock-1 cannot be sent to the Dask cluster: its function or arguments cannot be serialised" \
        in state.result[t].message


def test_a_sqlite_ledger_records_a_dask_run(dask_cluster, tmp_path):
    @task
    def double(x):
        return 2 * x

    with Flow("ledgered") as flow:
        double(double(3))
    store = EventStore(tmp_path / "ledger.db")
    state = flow.run(store=store, executor=DaskExecutor(address=dask_cluster.scheduler_address), run_id="d-1")
    assert state.is_successful()
    view = store.rebuild("d-1")
    assert exact(view.tasks["double-2"]) == Success("Task run succeeded.", result=12)
    assert store.verify("d-1").ok and len(store.history("d-1")) == 6
    store.close()


# --- nothing left behind -----------------------------------------------------------------


def stateledger_threads():
    return [t for t in threading.enumerate() if t.name.startswith("stateledger-task")]


def test_the_thread_pool_is_shut_down_after_the_run():
    with Flow("pool") as flow:
        for _ in range(8):
            flow.add_task(Task())  # a bare Task() in the block is not added (Prefect 1 warns about it)
    assert len(flow.tasks) == 8
    before = threading.active_count()
    assert flow.run(store=ListLedger(), executor=ThreadExecutor(max_workers=4)).is_successful()
    assert stateledger_threads() == [] and threading.active_count() == before


def test_a_stuck_timed_out_body_neither_holds_the_pool_nor_keeps_the_process_alive(tmp_path):
    """One worker thread; its body times out and never returns: the next task still runs, the process exits."""
    script = tmp_path / "stuck.py"
    script.write_text(textwrap.dedent("""
        import time
        from statemachine import Flow, task
        from statemachine.executors import ThreadExecutor
        from statemachine.testing import ListLedger

        @task(timeout=0.2)
        def stuck():
            time.sleep(60)

        @task
        def after():
            return "ran"

        with Flow("stuck") as flow:
            stuck()
            after()
        state = flow.run(store=ListLedger(), executor=ThreadExecutor(max_workers=1))
        print(sorted((t.name, type(s).__name__) for t, s in state.result.items()))
    """))
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[('after', 'Success'), ('stuck', 'TimedOut')]\n"
    assert time.monotonic() - t0 < 20


def test_a_local_cluster_we_started_is_closed_after_the_run():
    """An in-process cluster: no worker thread survives; the second run starts its own again."""
    @task
    def ident(i):
        return i

    with Flow("ours") as flow:
        for i in range(3):
            ident(i)
    ex = DaskExecutor(cluster_kwargs={"n_workers": 1, "threads_per_worker": 2, "processes": False})
    assert flow.run(store=ListLedger(), executor=ex).is_successful()
    after_first = {t.name for t in threading.enumerate()}
    assert flow.run(store=ListLedger(), executor=ex).is_successful()
    assert {t.name for t in threading.enumerate()} == after_first
    assert not any(name.startswith("Dask-Default-Threads") or "worker" in name.lower() for name in after_first)


def test_a_local_cluster_of_processes_leaves_no_process_behind():
    """Real worker processes: arguments and results cross a process boundary, then the cluster is closed."""
    import psutil

    @task
    def where(x):
        import os

        return os.getpid(), x * 2

    with Flow("processes") as flow:
        t = where(21)
    ex = DaskExecutor(cluster_kwargs={"n_workers": 1, "threads_per_worker": 1})
    state = flow.run(store=ListLedger(), executor=ex)
    pid, value = state.result[t].result
    assert value == 42 and pid != multiprocessing.current_process().pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert multiprocessing.active_children() == []


# --- choosing an executor ----------------------------------------------------------------


@pytest.mark.parametrize("spec,expected", [
    ("local", "LocalExecutor()"),
    ("threads", f"ThreadExecutor(max_workers={ThreadExecutor().max_workers})"),
    ("threads:8", "ThreadExecutor(max_workers=8)"),
    ("dask", "DaskExecutor(address=None)"),
    ("dask:tcp://10.0.0.5:8786", "DaskExecutor(address='tcp://10.0.0.5:8786')"),
])
def test_executor_from_spec(spec, expected):
    assert repr(executor_from_spec(spec)) == expected


@pytest.mark.parametrize("spec", ["", "thread", "threads:0", "threads:x", "local:3", "spark"])
def test_a_bad_executor_spec_says_what_is_accepted(spec):
    with pytest.raises(ExecutorSpecError) as info:
        executor_from_spec(spec)
    assert str(info.value) == (
        f"Unknown executor {spec!r}; use local, threads, threads:N (N >= 1 threads), "
        "dask (a local cluster) or dask:tcp://HOST:PORT (a running scheduler)")


def test_bad_executor_arguments_are_refused():
    with pytest.raises(ExecutorSpecError, match=r"max_workers=...\) must be an int >= 1, got 0"):
        ThreadExecutor(max_workers=0)
    with pytest.raises(ExecutorSpecError, match=r"with address='tcp://h:8786' the cluster is already running"):
        DaskExecutor(address="tcp://h:8786", cluster_kwargs={"n_workers": 2})
    with pytest.raises(ExecutorSpecError, match="executor must be a LocalExecutor, ThreadExecutor or DaskExecutor"):
        Flow("f", tasks=[Task()]).run(store=ListLedger(), executor="threads:8")


def test_without_dask_installed_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import distributed` sees when it is missing
    with pytest.raises(ExecutorError) as info:
        Flow("f", tasks=[Task()]).run(store=ListLedger(), executor=DaskExecutor())
    assert str(info.value) == (
        "DaskExecutor needs dask[distributed], which is not installed; "
        "install the extra: pip install 'stateledger[dask]'")


def test_an_unreachable_scheduler_is_a_clear_error():
    ex = DaskExecutor(address="tcp://127.0.0.1:1", client_kwargs={"timeout": "1s"})
    with pytest.raises(ExecutorError, match=r"Could not connect to the Dask scheduler at tcp://127.0.0.1:1"):
        Flow("f", tasks=[Task()]).run(store=ListLedger(), executor=ex)


def test_local_executor_is_the_default_and_runs_bodies_in_this_thread():
    seen = SharedList()
    t = Task()
    t.run = lambda: seen.append(threading.current_thread())
    for ex in (None, LocalExecutor()):
        assert Flow("f", tasks=[t]).run(store=ListLedger(), executor=ex).is_successful()
    assert seen == [threading.current_thread()] * 2


# --- the command line --------------------------------------------------------------------


def test_cli_run_takes_an_executor(tmp_path):
    from cli_helpers import ETL, make_env, sl

    result = sl("run", ETL, "--executor", "threads:4", "--run-id", "etl-threads", env=make_env(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-3] == 'Run etl-threads: Success("All reference tasks succeeded.")'
    assert lines[-2].startswith("  tasks: 4 Success; took ")


def test_cli_refuses_an_unknown_executor_with_one_line(tmp_path):
    from cli_helpers import ETL, error_line, make_env, sl

    result = sl("run", ETL, "--executor", "threads:zero", env=make_env(tmp_path))
    assert result.returncode == 2
    assert error_line(result) == (
        "Unknown executor 'threads:zero'; use local, threads, threads:N (N >= 1 threads), "
        "dask (a local cluster) or dask:tcp://HOST:PORT (a running scheduler)")
    assert not (tmp_path / "ledger.db").exists()


# --- several flows in threads of one process, one store ----------------------------------


def test_several_flows_in_threads_share_one_store_safely(store):
    """Four flows at once (each on its own thread pool) append to one store: every event lands once, chains hold."""
    flows = [Flow(f"parallel-{i}", tasks=[Task() for _ in range(60)]) for i in range(4)]
    states, errors = {}, []

    def work(i):
        try:
            states[i] = flows[i].run(store=store, run_id=f"p-{i}", executor=ThreadExecutor(max_workers=4))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert errors == [] and all(states[i].is_successful() for i in range(4))
    seqs = [e.seq for e in store.events()]
    assert seqs == list(range(1, 4 * 122 + 1))
    for i in range(4):
        history = store.history(f"p-{i}")
        assert len(history) == 122 and history[0].prev_hash is None
        assert all(b.prev_hash == a.hash for a, b in zip(history, history[1:]))
    assert store.verify().ok
