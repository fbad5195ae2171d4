"""Runs whose writer died: heartbeats, orphans, the reaper (store.reap, stateledger reap)."""

from __future__ import annotations

import datetime
import json
import random
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from ending_fixtures import start_child, wait_for_line, write_flow
from eventstore import EventStore, RunExistsError
from eventstore.cli import main
from eventstore.codec import iso
from eventstore.orphans import process_start, this_writer
from eventstore.protocol import Writer

from statemachine import Flow, task
from statemachine.errors import ArgumentError
from statemachine.events import Event, current_actor, new_event_id
from statemachine.states import Crashed, Pending, Running, Scheduled, utcnow
from subscribers import subscribe


LONG_FLOW = '''
import time
from statemachine import Flow, task


def announce(obj, old, new):
    if new.is_running():
        print("started", flush=True)


@task
def long_one():
    time.sleep(120)


with Flow("alive", state_handlers=[announce]) as flow:
    long_one()
'''


def test_killed_runs_are_reaped_as_crashed_and_a_live_writer_beside_them_never_is(tmp_path):
    write_flow(tmp_path)
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    write_flow(live_dir, LONG_FLOW)
    db = tmp_path / "kills.db"
    EventStore(db).close()
    live = start_child(live_dir, db, "live-writer")
    wait_for_line(live, "started")
    rng = random.Random(99)
    trials = [(f"killed-{i}", rng.choice(["library", "cli"]), rng.choice(["local", "threads"]),
               rng.uniform(0, 0.5)) for i in range(20)]
    pids = {}

    def trial(spec):
        run_id, via, executor, delay = spec
        proc = start_child(tmp_path, db, run_id, via=via, executor=executor)
        wait_for_line(proc, "started")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        pids[run_id] = proc.pid
        return proc.returncode

    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            assert set(pool.map(trial, trials)) == {-signal.SIGKILL}
        with EventStore(db) as store:
            orphans = {o.run_id: o for o in store.orphans()}
            assert set(orphans) == {t[0] for t in trials}  # the live writer is not one
            assert store.runs(flow="trial", states=["Running"]) != []
            started = time.perf_counter()
            reaped = store.reap()
            took = time.perf_counter() - started
            print(f"\nreaped {len(reaped)} orphans in {took * 1000:.0f} ms")
            assert sorted(r.run_id for r in reaped) == sorted(orphans)
            host = socket.gethostname()
            for run_id, *_ in trials:
                view = store.rebuild(run_id)
                assert isinstance(view.state, Crashed), (run_id, view.state)
                assert view.state.message.startswith(f"Flow run crashed: writer pid {pids[run_id]} on host {host} is gone; "
                                                     "last heartbeat ")
                assert view.state.message.endswith(f"Reaped by {current_actor()}.")
                assert all(s.is_finished() for s in view.tasks.values())
                crashed = store.events(run_id, states=[Crashed])
                assert crashed and all(e.actor == current_actor() for e in crashed)
                assert crashed[-1].kind == "flow"
            assert store.verify().ok
            end = store.max_seq()
            assert store.reap() == [] and store.max_seq() == end  # reaping twice writes nothing
            record = store.run("live-writer")
            assert record.state == "Running" and record.ended is None
            assert store.orphans() == []
    finally:
        live.send_signal(signal.SIGTERM)
        live.communicate(timeout=30)
    assert live.returncode == 143
    with EventStore(db) as store:
        assert store.rebuild("live-writer").state.is_cancelled()
        assert store.verify().ok


def _open_run(store, run_id, writer):
    """A run with a Running flow and task, claimed by ``writer`` (which may be on another host)."""
    store.recorder.claim_run(writer)
    now = utcnow()
    for kind, key, old, new in (("flow", "f", Scheduled(), Running("Running flow.")),
                                ("task", "t-1", Pending(), Running("Starting task run."))):
        store.append(Event(run_id, now, kind, key.split("-")[0], key, 1, old, new, actor=writer.actor,
                           event_id=new_event_id(), flow="f"))


def _writer(run_id, host="elsewhere", pid=4242, started=None, age=0.0, released=None):
    beat = iso(utcnow() - datetime.timedelta(seconds=age))
    return Writer(run_id, host, pid, started, beat, released, f"bob@{host}:{pid}")


def test_a_writer_on_another_host_is_gone_only_after_its_lease(store):
    _open_run(store, "far", _writer("far", age=120))
    _open_run(store, "near", _writer("near", age=5))
    assert [o.run_id for o in store.orphans(lease=300)] == []
    orphans = store.orphans(lease=60)
    assert [o.run_id for o in orphans] == ["far"]
    assert orphans[0].reason.startswith("writer pid 4242 on host elsewhere sent no heartbeat for 120 s (lease 60 s); ")
    reaped = store.reap(lease=60)
    assert [(r.run_id, r.tasks, r.events) for r in reaped] == [("far", ["t-1"], 2)]
    assert isinstance(store.rebuild("far").state, Crashed)
    assert store.rebuild("near").state.is_running()
    assert store.reap(lease=60) == []
    assert store.verify().ok


def test_a_writer_on_this_host_is_gone_as_soon_as_its_process_is(store):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    gone = _writer("dead", host=socket.gethostname(), pid=proc.pid)
    _open_run(store, "dead", gone)
    me = this_writer("mine")
    _open_run(store, "mine", me)
    reused = _writer("reused", host=me.host, pid=me.pid, started="2001-01-01T00:00:00.000000+00:00")
    _open_run(store, "reused", reused)
    found = {o.run_id: o.reason for o in store.orphans(lease=3600)}
    assert set(found) == {"dead", "reused"}
    assert found["dead"].startswith(f"writer pid {proc.pid} on host {me.host} is gone; last heartbeat ")
    assert "that pid now belongs to a process started" in found["reused"]


def test_two_reapers_of_one_orphan_exactly_one_takes_it_over(recorder):
    old = _writer("r", age=999)
    recorder.claim_run(old)
    first, second = this_writer("r"), _writer("r", host="other-reaper")
    assert recorder.take_over(old, first) is True
    assert recorder.take_over(old, second) is False
    assert recorder.writers(["r"]) == [first]
    assert recorder.beat("r", old.host, old.pid, iso(utcnow())) is False  # the dead writer lost the run


def test_a_live_run_never_lists_itself_as_orphan_nor_is_reaped(tmp_path):
    seen = []
    store = EventStore(tmp_path / "self.db")

    @task
    def look():
        seen.append((store.orphans(lease=0), store.reap(lease=0)))

    with Flow("self") as flow:
        look()
    assert flow.run(store=store, run_id="self").is_successful()
    assert seen == [([], [])]
    writer, = store.recorder.writers(["self"])
    assert writer.pid == process_start.__globals__["os"].getpid() and writer.released is not None


def test_listeners_in_the_reaping_process_see_the_crashed_events(store):
    _open_run(store, "heard", _writer("heard", age=600))
    heard = []
    with subscribe(heard.append, states=[Crashed]):
        store.reap()
    assert [(e.kind, e.key, type(e.new_state).__name__) for e in heard] == [
        ("task", "t-1", "Crashed"), ("flow", "f", "Crashed")]


def test_a_run_written_without_open_run_has_no_writer_and_is_never_reaped(store):
    store.append(Event("bare", utcnow() - datetime.timedelta(days=9), "flow", "f", "f", 1, Scheduled(),
                       Running(), event_id=new_event_id(), flow="f"))
    assert store.orphans(lease=0) == [] and store.reap(lease=0) == []


def test_cli_runs_shows_orphans_and_reap_closes_them_once(tmp_path):
    db = tmp_path / "cli.db"
    with EventStore(db) as store:
        _open_run(store, "lost-run", _writer("lost-run", age=3600))
    runner = CliRunner()
    listed = runner.invoke(main, ["runs", "--db", str(db)])
    assert listed.exit_code == 0 and "Running (orphaned)" in listed.output
    as_json = json.loads(runner.invoke(main, ["runs", "--db", str(db), "--json"]).output)
    assert [(r["run_id"], r["state"], r["orphaned"]) for r in as_json] == [("lost-run", "Running", True)]
    kept = runner.invoke(main, ["reap", "--db", str(db), "--older-than", "2h"])
    assert kept.exit_code == 0 and kept.output == "No orphaned runs: nothing to reap.\n"
    done = runner.invoke(main, ["reap", "--db", str(db), "--older-than", "30m"])
    assert done.exit_code == 0
    assert done.output.startswith("Reaped run lost-run (flow f): writer pid 4242 on host elsewhere sent no "
                                  "heartbeat for 3600 s (lease 1800 s); last heartbeat ")
    assert done.output.endswith(". 1 task(s) (t-1) and the flow -> Crashed.\n")
    again = runner.invoke(main, ["reap", "--db", str(db)])
    assert again.exit_code == 0 and again.output == "No orphaned runs: nothing to reap.\n"
    bad = runner.invoke(main, ["reap", "--db", str(db), "--older-than", "soon"])
    assert bad.exit_code == 2 and "'soon' is not a duration; write it like 60s, 5m or 1h" in bad.output


@pytest.mark.parametrize("lease", [-1.0])
def test_a_negative_lease_is_refused(store, lease):
    with pytest.raises(ValueError, match="lease must be >= 0 seconds"):
        store.orphans(lease=lease)
    with pytest.raises(ArgumentError, match="lease must be >= 0 seconds"):
        store.reap(lease=lease)


@pytest.mark.parametrize("option", ["orphan_lease", "reap_interval"])
@pytest.mark.parametrize("value", [-1, "60", True])
def test_a_durable_subscription_refuses_a_bad_orphan_lease_or_reap_interval(store, option, value):
    from subscribers import DurableSubscription

    with pytest.raises(ArgumentError, match=f"^{option} must be a number of seconds >= 0, got {value!r}$"):
        DurableSubscription("pager", lambda e: None, store=store, **{option: value})


def test_a_paused_run_waits_for_a_restart_and_is_never_reaped(store):
    from statemachine import triggers

    @task
    def first():
        return 1

    @task(trigger=triggers.manual_only)
    def approve(x):
        return x

    with Flow("approval") as flow:
        approve(first())
    state = flow.run(store=store, run_id="paused")
    assert not state.is_finished() and store.run("paused").ended is None
    writer, = store.recorder.writers(["paused"])
    assert writer.released is not None  # let go on purpose
    assert store.orphans(lease=0) == [] and store.reap(lease=0) == []


def test_a_run_an_error_stopped_stays_with_its_live_writer_until_that_process_is_gone(tmp_path):
    store = EventStore(tmp_path / "stopped.db")

    @task
    def breaks_the_ledger():
        store.recorder.close()  # every later append fails: the run stops with a LedgerError

    with Flow("stopped") as flow:
        breaks_the_ledger()
    with pytest.raises(Exception, match="closed"):
        flow.run(store=store, run_id="stopped")
    with EventStore(tmp_path / "stopped.db") as reader:
        writer, = reader.recorder.writers(["stopped"])
        assert writer.released is None and writer.pid == this_writer("x").pid
        assert reader.orphans(lease=0) == []  # this process still lives


def test_a_run_being_written_beats_and_stops_beating_once_released(store):
    from eventstore.orphans import RunLease

    with RunLease(store.recorder, "beating", interval=0.05) as lease:
        first = store.recorder.writers(["beating"])[0].heartbeat
        deadline = time.monotonic() + 10
        while store.recorder.writers(["beating"])[0].heartbeat == first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.recorder.writers(["beating"])[0].heartbeat > first
    released = store.recorder.writers(["beating"])[0]
    time.sleep(0.2)
    assert store.recorder.writers(["beating"])[0] == released and released.released is not None
    assert lease.beat() is False


def test_writers_stay_outside_the_hash_chain_and_every_checkpoint(store):
    _open_run(store, "sealed", _writer("sealed", age=120))
    sealed = store.checkpoint()
    writer = store.recorder.writers(["sealed"])[0]
    assert store.recorder.beat("sealed", writer.host, writer.pid, iso(utcnow() - datetime.timedelta(seconds=100)))
    _open_run(store, "later", _writer("later", age=5))
    assert store.verify(checkpoints=[sealed]).ok
    assert [r.run_id for r in store.reap(lease=60)] == ["sealed"]
    report = store.verify(checkpoints=[sealed, store.checkpoint()])
    assert report.ok, report.problems


def test_reading_an_older_ledger_without_writers_creates_nothing(tmp_path):
    from eventstore.sqlite import SQLiteRecorder

    (tmp_path / "old").mkdir()
    path = tmp_path / "old" / "old.db"
    with EventStore(path) as store:
        _open_run(store, "before", _writer("before"))
        store.recorder._conn.execute("DROP TABLE writers")  # as a ledger made before writers were recorded
    before = path.read_bytes()
    with EventStore(recorder=SQLiteRecorder(str(path), read_only=True)) as reader:
        assert reader.recorder.writers() == [] and reader.orphans(lease=0) == []
        assert reader.verify().ok
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["old.db"]
    with EventStore(path) as store:
        store.recorder.claim_run(_writer("after"))
        assert [w.run_id for w in store.recorder.writers()] == ["after"]
        assert store.verify().ok


def test_reading_a_postgres_ledger_without_writers_creates_nothing(pg_url):
    import psycopg

    from conftest import pg_server_url
    from eventstore.postgres import PostgresRecorder

    with EventStore(pg_url) as store:
        _open_run(store, "before", _writer("before"))
        schema = store.recorder.schema
        store.recorder._conn.execute(f'DROP TABLE "{schema}".writers')  # as a ledger made before writers

    def tables():
        with psycopg.connect(pg_server_url(), autocommit=True) as conn:
            return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}

    with EventStore(recorder=PostgresRecorder(pg_url, create=False)) as reader:
        assert reader.recorder.writers() == [] and reader.orphans(lease=0) == []
        assert reader.verify().ok
    assert "writers" not in tables()
    with EventStore(pg_url) as store, EventStore(pg_url) as other:
        store.recorder.claim_run(_writer("after"))
        assert "writers" in tables()
        with pytest.raises(RunExistsError):
            other.recorder.claim_run(_writer("after", host="rival"))
        with pytest.raises(RunExistsError):
            other.recorder.claim_run(_writer("before", host="rival"))  # it has events
        assert [w.host for w in other.recorder.writers()] == ["elsewhere"]
        assert store.verify().ok


def test_a_postgres_claim_whose_connection_broke_after_it_committed_is_not_refused(pg_url):
    import psycopg

    from conftest import pg_server_url

    app = "claimer-" + pg_url[-8:]
    mine, reaper = _writer("mine"), this_writer("mine")
    with EventStore(pg_url) as other, EventStore(pg_url + f"&application_name={app}") as store:
        other.recorder.claim_run(mine)  # stands for our claim that committed just before the break

        def break_connection():
            with psycopg.connect(pg_server_url(), autocommit=True) as conn:
                assert conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                    "WHERE application_name = %s", (app,)).fetchone()[0] == 1

        break_connection()
        store.recorder.claim_run(mine)  # reconnects, finds its own row: done, not RunExistsError
        with pytest.raises(RunExistsError):
            store.recorder.claim_run(_writer("mine", host="rival"))
        other.recorder.take_over(mine, reaper)
        break_connection()
        assert store.recorder.take_over(mine, reaper) is True  # the swap it finds done is its own
        assert store.recorder.take_over(mine, _writer("mine", host="late")) is False
        assert store.recorder.writers(["mine"]) == [reaper]


def test_killed_runs_on_postgres_are_reaped_as_crashed_and_a_live_writer_beside_them_never_is(tmp_path, pg_url):
    write_flow(tmp_path)
    live_dir = tmp_path / "live"
    live_dir.mkdir()
    write_flow(live_dir, LONG_FLOW)
    EventStore(pg_url).close()
    live = start_child(live_dir, pg_url, "live-writer")
    try:
        wait_for_line(live, "started")
        trials = [(f"killed-{i}", "cli" if i % 2 else "library", "threads" if i % 3 else "local", 0.1 * i)
                  for i in range(6)]
        pids = {}
        for run_id, via, executor, delay in trials:
            proc = start_child(tmp_path, pg_url, run_id, via=via, executor=executor)
            wait_for_line(proc, "started")
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            pids[run_id] = proc.pid
        with EventStore(pg_url) as store:
            assert {o.run_id for o in store.orphans()} == set(pids)
            assert sorted(r.run_id for r in store.reap()) == sorted(pids)
            for run_id, pid in pids.items():
                view = store.rebuild(run_id)
                assert isinstance(view.state, Crashed) and all(s.is_finished() for s in view.tasks.values())
                assert f"writer pid {pid} on host {socket.gethostname()} is gone" in view.state.message
            assert store.verify().ok
            assert store.reap() == [] and store.run("live-writer").state == "Running"
    finally:
        live.send_signal(signal.SIGTERM)
        live.communicate(timeout=30)
    assert live.returncode == 143
    with EventStore(pg_url) as store:
        assert store.rebuild("live-writer").state.is_cancelled() and store.verify().ok
