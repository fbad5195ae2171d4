"""Durable subscriptions: a named listener whose cursor lives in the ledger file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from eventstore import EventStore
from statemachine.errors import NotCallableError, StateLedgerError
from statemachine.filters import EventFilter, FilterError
from statemachine.states import Failed, Success
from subscribers import DurableSubscription, SubscriptionConflictError, subscribe
from subscribers.durable import SubscriptionStoreError



@pytest.fixture(params=["file", "memory", "postgres"])
def store(request, tmp_path):
    """A real ledger: a SQLite file under tmp_path, the in-memory one, a PostgreSQL schema."""
    target = {"file": str(tmp_path / "ledger.db"), "memory": ":memory:"}.get(request.param)
    s = EventStore(target if target is not None else request.getfixturevalue("pg_url"))
    yield s
    s.close()


def seqs(events):
    return [e.seq for e in events]


def test_catch_up_delivers_every_event_after_the_cursor_in_seq_order(store, failing_flow):
    failing_flow().run(store=store, run_id="one")
    seen = []
    sub = DurableSubscription("all", seen.append, store=store, batch_size=4)
    assert sub.catch_up() == 6
    assert seqs(seen) == seqs(store.history("one"))
    assert sub.cursor == seen[-1].seq
    assert sub.catch_up() == 0  # nothing new
    failing_flow().run(store=store, run_id="two")
    assert sub.catch_up() == 6
    assert seqs(seen[6:]) == seqs(store.history("two"))


def test_a_durable_filter_picks_the_same_events_as_a_live_listener(store, failing_flow):
    live = []
    with subscribe(live.append, states=[Failed], task="bad"):
        failing_flow(pairs=3).run(store=store)
    durable = []
    DurableSubscription("failures", durable.append, store=store, states=[Failed], task="bad").catch_up()
    assert [e.event_id for e in durable] == [e.event_id for e in live]
    assert len(durable) == 3


def test_a_raising_listener_leaves_the_cursor_on_the_last_success_and_the_next_catch_up_retries(store, failing_flow):
    failing_flow(pairs=3).run(store=store, run_id="r")
    all_seqs = seqs(store.history("r"))
    seen, fail_on = [], {all_seqs[4]}

    def flaky(event):
        if event.seq in fail_on:
            fail_on.discard(event.seq)
            raise ConnectionError("webhook down")
        seen.append(event.seq)

    sub = DurableSubscription("flaky", flaky, store=store, batch_size=3)
    with pytest.raises(ConnectionError, match="webhook down") as info:
        sub.catch_up()
    assert sub.cursor == all_seqs[3]
    assert "flaky" in info.value.__notes__[0] and f"seq={all_seqs[4]}" in info.value.__notes__[0]
    assert sub.catch_up() == len(all_seqs) - 4
    assert seen == all_seqs  # none lost, none twice here


def test_two_subscriptions_on_one_ledger_are_independent(store, failing_flow):
    failing_flow().run(store=store)
    a, b = [], []
    sub_a = DurableSubscription("a", a.append, store=store)
    sub_b = DurableSubscription("b", b.append, store=store, kinds="flow")
    assert sub_a.catch_up(limit=2) == 2
    assert sub_b.catch_up() == 2
    assert sub_a.catch_up() == 4
    assert len(a) == 6 and [e.kind for e in b] == ["flow", "flow"]
    assert sub_a.cursor == sub_b.cursor == a[-1].seq


def test_the_cursor_survives_reopening_the_ledger_file(tmp_path, failing_flow):
    path = str(tmp_path / "ledger.db")
    with EventStore(path) as first:
        failing_flow().run(store=first)
    seen = []
    with DurableSubscription("resume", seen.append, store=path) as sub:
        assert sub.catch_up(limit=4) == 4
    with DurableSubscription("resume", seen.append, store=path) as sub:
        assert sub.catch_up() == 2
    assert seqs(seen) == list(range(seen[0].seq, seen[0].seq + 6))


def test_a_new_subscription_can_start_after_the_last_event(store, failing_flow):
    failing_flow().run(store=store, run_id="old")
    seen = []
    sub = DurableSubscription("from-now", seen.append, store=store, start="end")
    assert sub.catch_up() == 0
    failing_flow().run(store=store, run_id="new")
    assert sub.catch_up() == 6 and {e.run_id for e in seen} == {"new"}


def test_without_a_store_it_reads_the_default_ledger(tmp_path, monkeypatch, failing_flow):
    path = tmp_path / "default.db"
    monkeypatch.setenv("STATELEDGER_DB", str(path))
    failing_flow().run(run_id="default")
    seen = []
    DurableSubscription("default", seen.append).catch_up()
    assert [e.run_id for e in seen] == ["default"] * 6
    with EventStore(str(path)) as store:
        assert store.load_cursor("default") == (seen[-1].seq, EventFilter().to_dict())


def test_a_name_reused_with_a_different_filter_is_refused_and_the_same_filter_resumes(store):
    DurableSubscription("pager", print, store=store, states=[Failed, Success])
    DurableSubscription("pager", print, store=store, states=[Success, Failed])  # same filter, other order
    with pytest.raises(SubscriptionConflictError, match="'pager' already exists") as info:
        DurableSubscription("pager", print, store=store, states=[Failed])
    assert isinstance(info.value, StateLedgerError)
    assert info.value.stored["states"] == ["statemachine.states.Failed", "statemachine.states.Success"]
    assert "Use another name" in str(info.value)


def test_bad_input_is_refused(store):
    with pytest.raises(NotCallableError, match="listener"):
        DurableSubscription("x", "not callable", store=store)
    with pytest.raises(FilterError, match="State classes"):
        DurableSubscription("x", print, store=store, states=[ValueError])
    with pytest.raises(ValueError, match="non-empty name"):
        DurableSubscription("", print, store=store)
    with pytest.raises(ValueError, match="start="):
        DurableSubscription("x", print, store=store, start="now")
    with pytest.raises(SubscriptionStoreError, match="cannot keep a durable cursor"):
        DurableSubscription("x", print, store=object())


def test_follow_delivers_events_committed_while_it_runs(tmp_path, failing_flow):
    path = str(tmp_path / "ledger.db")
    seen, done = [], threading.Event()

    def listener(event):
        seen.append(event)
        if event.kind == "flow" and event.new_state.is_finished():
            done.set()

    def follow():
        with DurableSubscription("tail", listener, store=path) as sub:
            sub.follow(poll_interval=0.02, stop=done, timeout=20)

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(0.1)
    with EventStore(path) as writer:
        failing_flow().run(store=writer, run_id="live")
        follower.join(20)
        assert not follower.is_alive()
        assert seqs(seen) == seqs(writer.history("live"))


# --- real processes ---------------------------------------------------------------------

FOLLOWER = """
import sys
from subscribers import DurableSubscription
path = sys.argv[1]
done = []

def show(event):
    print(event.seq, event.run_id, event.key, type(event.new_state).__name__, flush=True)
    if event.kind == "flow" and event.new_state.is_finished():
        done.append(True)

with DurableSubscription("watcher", show, store=path) as sub:
    print("ready", flush=True)
    sub.follow(poll_interval=0.02, stop=lambda: bool(done), timeout=60)
"""

WRITER = """
import sys, time
from eventstore import EventStore
from statemachine import Flow, task

@task
def step(x):
    time.sleep(0.005)
    return x + 1

with Flow("written-by-a") as flow:
    x = step(0)
    for _ in range(29):
        x = step(x)
with EventStore(sys.argv[1]) as store:
    print(flow.run(store=store, run_id="run-a"))
"""


def python(code: str, *args: str, cwd: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd, text=True, stdout=subprocess.PIPE, **kwargs
    )


def test_a_follower_in_another_process_sees_every_transition_written_by_a_process_in_order(tmp_path):
    path = str(tmp_path / "ledger.db")
    EventStore(path).close()
    follower = python(FOLLOWER, path, cwd=tmp_path)
    try:
        assert follower.stdout.readline().strip() == "ready"
        writer = python(WRITER, path, cwd=tmp_path)
        out, _ = writer.communicate(timeout=60)
        assert writer.returncode == 0 and out.startswith("Success")
        lines, _ = follower.communicate(timeout=60)
    finally:
        follower.kill() if follower.poll() is None else None
        follower.stdout.close()
    assert follower.returncode == 0
    with EventStore(path) as store:
        expected = [f"{e.seq} run-a {e.key} {type(e.new_state).__name__}" for e in store.history("run-a")]
    assert len(expected) == 62
    assert lines.splitlines() == expected


CONSUMER = """
import sys, time
from subscribers import DurableSubscription
path, out, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(out, "a") as log:
    def deliver(event):
        log.write(f"{event.seq}\\n")
        log.flush()
        time.sleep(delay)
    with DurableSubscription("notify", deliver, store=path, batch_size=10, checkpoint_interval=60) as sub:
        sub.catch_up()
"""


def test_a_durable_subscription_killed_mid_delivery_resumes_with_nothing_skipped(tmp_path, failing_flow):
    path, out = str(tmp_path / "ledger.db"), tmp_path / "delivered.txt"
    with EventStore(path) as store:
        failing_flow(pairs=20).run(store=store, run_id="big")
        wanted = seqs(store.history("big"))
    consumer = python(CONSUMER, path, str(out), "0.02", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while (not out.exists() or len(out.read_text().split()) < 15) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(consumer.pid, signal.SIGKILL)
        consumer.wait(10)
    finally:
        consumer.stdout.close()
    first = [int(s) for s in out.read_text().split()]
    assert consumer.returncode == -signal.SIGKILL and 15 <= len(first) < len(wanted)

    restarted = python(CONSUMER, path, str(out), "0", cwd=tmp_path)
    restarted.communicate(timeout=60)
    assert restarted.returncode == 0
    delivered = [int(s) for s in out.read_text().split()]
    second = delivered[len(first):]
    assert second[0] <= first[-1] + 1, "an event was skipped across the kill"
    assert second[0] in wanted and second == wanted[wanted.index(second[0]):]
    assert set(delivered) == set(wanted)  # each at least once
    assert second[0] <= first[-1]  # the unsaved tail of the killed batch came again
