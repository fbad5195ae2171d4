"""One consumer per durable subscription name: a lease in the ledger, taken over when its holder dies."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from eventstore import EventStore
from eventstore.memory import MemoryRecorder
from eventstore.protocol import Leasing
from subscribers import DurableSubscription, SubscriptionBusyError

ROOT = Path(__file__).resolve().parent.parent

CONSUMER = """
import os, sys
from subscribers import DurableSubscription, SubscriptionBusyError
path, out, ttl, mode, stopfile = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
log = open(out, "a")

def deliver(event):
    log.write(f"{os.getpid()} {event.seq}\\n")
    log.flush()

try:
    with DurableSubscription("pager", deliver, store=path, lease_ttl=ttl) as sub:
        if mode == "follow":
            sub.follow(poll_interval=0.02, stop=lambda: os.path.exists(stopfile), timeout=60)
        else:
            sub.catch_up()
except SubscriptionBusyError as exc:
    print(("lost: " if exc.lost else "busy: ") + str(exc), flush=True)
    sys.exit(3)
print("done", flush=True)
"""


class Consumers:
    """Consumer processes of the subscription "pager" on one ledger, logging ``pid seq`` per delivery."""

    def __init__(self, tmp_path: Path) -> None:
        self.path, self.out, self.stopfile = tmp_path / "ledger.db", tmp_path / "delivered.txt", tmp_path / "stop"
        self.out.touch()
        self.procs: list[subprocess.Popen] = []

    def start(self, mode: str = "follow", ttl: float = 30.0) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CONSUMER), str(self.path), str(self.out), str(ttl), mode,
             str(self.stopfile)], text=True, stdout=subprocess.PIPE, env=env)
        self.procs.append(proc)
        return proc

    def delivered(self, pid: int | None = None) -> list[int]:
        pairs = [line.split() for line in self.out.read_text().splitlines()]
        return [int(seq) for who, seq in pairs if pid is None or int(who) == pid]

    def wait_for(self, seqs: list[int], pid: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not set(seqs) <= set(self.delivered(pid)):
            assert time.monotonic() < deadline, f"process {pid} did not deliver {seqs}"
            time.sleep(0.02)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.wait(10)
            proc.stdout.close()


@pytest.fixture
def consumers(tmp_path):
    c = Consumers(tmp_path)
    EventStore(c.path).close()
    yield c
    c.cleanup()


def write_run(path: Path, failing_flow, run_id: str) -> list[int]:
    with EventStore(path) as store:
        failing_flow(pairs=2).run(store=store, run_id=run_id)
        return [e.seq for e in store.history(run_id)]


def cursor(path: Path) -> int:
    with EventStore(path) as store:
        return store.load_cursor("pager")[0]


def test_a_second_consumer_in_another_process_is_refused_while_the_first_delivers(consumers, failing_flow):
    first = consumers.start("follow")
    seqs = write_run(consumers.path, failing_flow, "one")
    consumers.wait_for(seqs, first.pid)
    second = consumers.start("catch_up")
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 3
    assert out.startswith("busy: Durable subscription 'pager' is being consumed by ") and f":{first.pid} " in out
    assert "a second consumer is refused so that no event is delivered twice" in out
    assert consumers.delivered(second.pid) == []

    consumers.stopfile.touch()  # the first stops: its lease is released, its cursor saved
    assert first.communicate(timeout=60)[0].strip() == "done"
    more = write_run(consumers.path, failing_flow, "two")
    third = consumers.start("catch_up")
    assert third.communicate(timeout=60)[0].strip() == "done"
    assert consumers.delivered() == seqs + more  # each exactly once, in order
    assert consumers.delivered(third.pid) == more and cursor(consumers.path) == more[-1]


def test_after_sigkill_a_restarted_consumer_takes_over_at_once_with_nothing_skipped(consumers, failing_flow):
    """The killed holder is a zombie on this host (not yet reaped): it is gone, no need to wait 30 s."""
    first = consumers.start("follow", ttl=30)
    seqs = write_run(consumers.path, failing_flow, "one")
    consumers.wait_for(seqs, first.pid)
    os.kill(first.pid, signal.SIGKILL)
    time.sleep(0.2)
    more = write_run(consumers.path, failing_flow, "two")
    started = time.monotonic()
    restarted = consumers.start("catch_up", ttl=30)
    assert restarted.communicate(timeout=60)[0].strip() == "done"
    assert time.monotonic() - started < 20
    first.wait(10)
    assert first.returncode == -signal.SIGKILL
    again = consumers.delivered(restarted.pid)
    assert again and again[-len(more):] == more and set(seqs + more) == set(consumers.delivered())
    assert again[0] <= consumers.delivered(first.pid)[-1] + 1  # nothing skipped across the kill
    assert cursor(consumers.path) == more[-1]


def test_a_stopped_consumer_is_replaced_after_its_lease_and_then_stops_itself(consumers, failing_flow):
    """SIGSTOP: the holder lives but stops renewing; after lease_ttl another takes over; the first
    notices when it runs again, delivers nothing more and leaves the cursor alone."""
    first = consumers.start("follow", ttl=1.5)
    seqs = write_run(consumers.path, failing_flow, "one")
    consumers.wait_for(seqs, first.pid)
    os.kill(first.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    refused = consumers.start("catch_up", ttl=1.5)
    out, _ = refused.communicate(timeout=60)
    assert refused.returncode == 3 and out.startswith("busy: ") and f":{first.pid} " in out

    time.sleep(max(0.0, 1.7 - (time.monotonic() - stopped)))
    successor = consumers.start("follow", ttl=1.5)
    more = write_run(consumers.path, failing_flow, "two")
    consumers.wait_for(more, successor.pid)
    os.kill(first.pid, signal.SIGCONT)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 3 and out.startswith("lost: Durable subscription 'pager' lost its lease")
    assert not set(more) & set(consumers.delivered(first.pid))
    consumers.stopfile.touch()
    assert successor.communicate(timeout=60)[0].strip() == "done"
    assert cursor(consumers.path) == more[-1]


# --- in one process, on every recorder ------------------------------------------------------


def test_two_subscriptions_of_one_name_in_one_process_do_not_deliver_at_once(store, failing_flow):
    failing_flow().run(store=store, run_id="r")
    started, stop = threading.Event(), threading.Event()
    first = DurableSubscription("pager", lambda e: started.set(), store=store)
    follower = threading.Thread(target=first.follow, kwargs={"poll_interval": 0.01, "stop": stop, "timeout": 30})
    follower.start()
    try:
        assert started.wait(10)
        second = DurableSubscription("pager", lambda e: None, store=store)
        with pytest.raises(SubscriptionBusyError, match="is being consumed by") as info:
            second.catch_up()
        assert info.value.holder.endswith(f":{os.getpid()}") and 0 < info.value.expires_in <= 30
        assert not info.value.lost and info.value.name == "pager"
        other = DurableSubscription("other-name", lambda e: None, store=store)
        assert other.catch_up() == len(store.events())  # another name is another consumer
    finally:
        stop.set()
        follower.join(10)
    assert second.catch_up() == 0 and second.cursor == store.max_seq()  # released when follow returned


def test_a_consumer_whose_lease_ran_out_stops_and_leaves_the_cursor_to_its_successor(store, failing_flow):
    failing_flow().run(store=store, run_id="r")
    first_saw, second_saw = [], []
    second = DurableSubscription("pager", second_saw.append, store=store, lease_ttl=0.3)

    def slow(event):
        first_saw.append(event.seq)
        if len(first_saw) == 1:
            time.sleep(0.4)  # longer than lease_ttl: meanwhile a successor takes over and finishes
            assert second.catch_up() == len(store.events())

    first = DurableSubscription("pager", slow, store=store, lease_ttl=0.3, checkpoint_interval=0)
    with pytest.raises(SubscriptionBusyError, match="lost its lease") as info:
        first.catch_up()
    assert info.value.lost and not getattr(info.value, "__notes__", None)  # no "the listener raised" note
    assert first_saw == [1] and [e.seq for e in second_saw] == [e.seq for e in store.events()]
    assert store.load_cursor("pager")[0] == store.max_seq()  # the successor's cursor, not moved back


def test_lease_ttl_must_be_a_positive_number(store):
    for bad in (0, -1, "30", True):
        with pytest.raises(ValueError, match="lease_ttl must be a positive number of seconds"):
            DurableSubscription("x", print, store=store, lease_ttl=bad)


def test_the_recorders_keep_leases(recorder):
    assert isinstance(recorder, Leasing)
    assert recorder.acquire_lease("s", "a", 30) is None
    holder, left = recorder.acquire_lease("s", "b", 30)
    assert holder == "a" and 29 < left <= 30
    assert recorder.acquire_lease("s", "a", 30) is None  # the holder renews by acquiring again
    assert recorder.renew_lease("s", "a", 30) and not recorder.renew_lease("s", "b", 30)
    assert recorder.acquire_lease("s", "b", 30, replacing="a") is None  # a holder known to be dead
    assert not recorder.renew_lease("s", "a", 30)
    recorder.release_lease("s", "a")  # not a's any more: nothing happens
    assert recorder.acquire_lease("s", "c", 30)[0] == "b"
    recorder.release_lease("s", "b")
    assert recorder.acquire_lease("s", "c", 0.2) is None
    assert recorder.acquire_lease("t", "d", 30) is None  # names are independent
    time.sleep(0.3)
    assert recorder.acquire_lease("s", "e", 30) is None  # c's lease expired


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_lease_is_seen_by_another_connection_to_the_ledger(tmp_path, request, kind):
    if kind == "sqlite":
        from eventstore.sqlite import SQLiteRecorder as Opened

        where = str(tmp_path / "l.db")
    else:
        from eventstore.postgres import PostgresRecorder as Opened

        where = request.getfixturevalue("pg_url")
    one, two = Opened(where), Opened(where)
    try:
        assert one.acquire_lease("s", "a", 30) is None
        assert two.acquire_lease("s", "b", 30)[0] == "a"
        one.release_lease("s", "a")
        assert two.acquire_lease("s", "b", 30) is None
    finally:
        one.close()
        two.close()


class NoLeases:
    """A recorder written before leases existed."""

    def __init__(self) -> None:
        self.inner = MemoryRecorder()
        self.path = self.inner.path

    def __getattr__(self, name):
        if name.endswith("_lease"):
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_a_recorder_without_leases_still_delivers_and_says_it_cannot_refuse(caplog, failing_flow):
    store = EventStore(recorder=NoLeases())
    failing_flow().run(store=store, run_id="r")
    with caplog.at_level(logging.WARNING, logger="stateledger"):
        assert DurableSubscription("pager", lambda e: None, store=store).catch_up() == len(store.events())
    assert "keeps no leases: a second consumer of 'subscription:pager' would not be refused" in caplog.text
