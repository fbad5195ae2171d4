"""A SIGKILLed run still alerts: a durable webhook listener reaps it and posts its Crashed notice."""

from __future__ import annotations

import signal
import threading
import time

from ending_fixtures import start_child, wait_for_line, write_flow
from eventstore import EventStore
from servers import http_receiver
from statemachine.states import Crashed
from subscribers.durable import DurableSubscription
from subscribers.notifiers import webhook_notifier


def _crashed_flow_notices(server):
    return [r.json() for r in server.requests if b"Crashed" in r.body and b'"kind":"flow"' in r.body.replace(b" ", b"")]


def test_a_durable_webhook_listener_posts_the_crashed_notice_of_a_killed_run(tmp_path, monkeypatch):
    write_flow(tmp_path)
    db = tmp_path / "alerts.db"
    EventStore(db).close()
    with http_receiver() as server:
        monkeypatch.setenv("STATELEDGER_SECRET_HOOK_URL", server.url)
        stop = threading.Event()
        sub = DurableSubscription("pager", webhook_notifier(webhook_secret="HOOK_URL", only_states=[Crashed]).as_durable_listener(),
                                  store=str(db), start="end", reap_interval=0.5)
        follower = threading.Thread(target=sub.follow, kwargs={"poll_interval": 0.1, "stop": stop})
        follower.start()
        try:
            proc = start_child(tmp_path, db, "killed-nightly", via="cli")
            wait_for_line(proc, "started")
            proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            proc.communicate(timeout=30)
            deadline = killed + 30
            while not _crashed_flow_notices(server) and time.monotonic() < deadline:
                time.sleep(0.02)
            latency = time.monotonic() - killed
        finally:
            stop.set()
            follower.join(timeout=30)
            sub.close()
        notices = _crashed_flow_notices(server)
        print(f"\nkill -> Crashed notice posted: {latency:.2f} s")
        assert len(notices) == 1, server.requests
        body = notices[0]
        assert body["run_id"] == "killed-nightly" and body["kind"] == "flow"
        assert body["new_state"]["type"] == "Crashed"
        assert "is gone; last heartbeat" in body["new_state"]["message"]
        print(f"posted: {body['text']}")
        assert latency < 60  # within one lease (a writer on this host: at the next reap round)
    with EventStore(db) as store:
        assert isinstance(store.rebuild("killed-nightly").state, Crashed)
        assert store.verify().ok


def test_reap_false_leaves_orphans_to_someone_else(tmp_path):
    write_flow(tmp_path)
    db = tmp_path / "quiet.db"
    EventStore(db).close()
    proc = start_child(tmp_path, db, "quiet", via="library")
    wait_for_line(proc, "started")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    seen = []
    with DurableSubscription("quiet", seen.append, store=str(db), reap=False) as sub:
        sub.catch_up()
    with EventStore(db) as store:
        assert [o.run_id for o in store.orphans()] == ["quiet"]
        assert not any(isinstance(e.new_state, Crashed) for e in seen)
        with DurableSubscription("loud", seen.append, store=store) as sub:  # the default reaps
            sub.catch_up()
        assert store.orphans() == [] and isinstance(store.rebuild("quiet").state, Crashed)
        assert [e.kind for e in seen if isinstance(e.new_state, Crashed)][-1] == "flow"
