"""Manual marks: ``store.mark(run_id, key, state, reason=..., by=...)`` through the pipeline."""

from __future__ import annotations

import getpass
import hashlib
import sqlite3

import pytest
from state_checks import exact

from eventstore import EventStore
from eventstore.errors import RunNotFoundError
from statemachine import Flow, graph, task
from statemachine.errors import ArgumentError, IllegalTransitionError
from statemachine.states import Cancelled, Failed, Running, Skipped, Success
from subscribers import DurableSubscription, add_state_handler, subscribe


def failed_run(store, run_id="m1"):
    """fetch (Success) -> publish (Failed): the flow fails."""

    @task
    def fetch():
        return 1

    @task
    def publish(x):
        raise ValueError("printer on fire")

    with Flow("report") as flow:
        publish(fetch())
    flow.run(store=store, run_id=run_id)
    return flow


def test_marking_a_failed_task_as_success_records_who_and_why_and_recomputes_the_flow(store):
    failed_run(store)
    event = store.mark("m1", "publish-1", "Success", reason="printed by hand", by="alice")
    assert (event.kind, event.key, event.actor, event.reason) == ("task", "publish-1", "alice", "printed by hand")
    assert exact(event.new_state) == Success("Marked Success by alice: printed by hand")
    assert isinstance(event.old_state, Failed) and event.seq is not None
    history = store.history("m1")
    assert history[-2] == event
    flow_event = history[-1]
    assert exact((flow_event.kind, type(flow_event.old_state), flow_event.new_state)) == (
        "flow", Failed, Success("All reference tasks succeeded."))
    assert (flow_event.actor, flow_event.reason) == ("alice", "printed by hand")
    assert all(e.reason is None for e in history[:-2])  # ordinary transitions have no reason
    assert store.rebuild("m1").state.is_successful() and store.runs()[0].state == "Success"
    assert store.verify().ok


def test_by_defaults_to_the_os_user_and_a_state_object_is_kept_as_given(store):
    failed_run(store)
    event = store.mark("m1", "publish-1", Skipped("not needed today"), reason="holiday")
    assert event.actor == getpass.getuser() and exact(event.new_state) == Skipped("not needed today")


def test_an_illegal_mark_is_refused_and_writes_nothing(store):
    failed_run(store)
    before = store.max_seq()
    for target in ("Running", "Pending", "Retrying"):
        with pytest.raises(IllegalTransitionError) as err:
            store.mark("m1", "publish-1", target, reason="try again")
        assert str(err.value).startswith(
            f"Cannot mark task publish-1 of run m1 as {target}: it is Failed, and a mark may only move a state "
            "to a finished one (Cached, Cancelled, Crashed, Failed, Skipped, Success, TimedOut, TriggerFailed, ValidationFailed), never "
            "back to Running or a pending state. Nothing was written")
    assert store.max_seq() == before and store.verify().ok


def test_bad_arguments_are_refused_with_what_to_do(store):
    failed_run(store)
    with pytest.raises(ArgumentError, match=r"A mark needs a reason .* got ''"):
        store.mark("m1", "publish-1", "Success", reason="")
    with pytest.raises(ArgumentError, match=r"^Run m1 has no task 'nope' \(and its flow is 'report'\). Its task "
                                            r"keys: fetch-1, publish-1$"):
        store.mark("m1", "nope", "Success", reason="x")
    with pytest.raises(ArgumentError, match=r"Cannot mark a state as 'Great'"):
        store.mark("m1", "publish-1", "Great", reason="x")
    with pytest.raises(RunNotFoundError):
        store.mark("zz", "publish-1", "Success", reason="x")


def test_the_manual_edges_go_to_finished_states_only():
    assert graph.is_legal(Failed(), Success(), "manual") and not graph.is_legal(Failed(), Success())
    assert graph.is_legal(Running(), Cancelled(), "manual")
    assert not graph.is_legal(Success(), Running(), "manual")
    assert {b for _, b in graph.manual_edges()} == {
        "Success", "Cached", "Skipped", "Failed", "TriggerFailed", "TimedOut", "ValidationFailed", "Crashed",
        "Cancelled"}
    from statemachine.states import Looped, Mapped

    assert not graph.is_legal(Failed(), Looped(), "manual") and not graph.is_legal(Failed(), Mapped(), "manual")


def test_global_handlers_see_a_mark_and_may_rewrite_it_listeners_hear_it(store):
    failed_run(store)
    seen, heard = [], []

    def veto(obj, old, new):
        seen.append((repr(obj), type(old).__name__, type(new).__name__))
        if obj.kind == "task" and isinstance(new, Success):
            return Skipped("a success needs a ticket; skipped instead")
        return None

    handle = add_state_handler(veto)
    sub = subscribe(lambda e: heard.append((e.key, type(e.new_state).__name__, e.reason)))
    try:
        event = store.mark("m1", "publish-1", "Success", reason="no ticket")
    finally:
        handle.remove()
        sub.disconnect()
    assert seen == [("<Task: publish>", "Failed", "Success"), ("<Flow: name=report>", "Failed", "Success")]
    assert exact(event.new_state) == Skipped("a success needs a ticket; skipped instead")
    assert exact(event.proposed_state) == Success(f"Marked Success by {getpass.getuser()}: no ticket")
    assert event.rewritten_by == (f"{__name__}.test_global_handlers_see_a_mark_and_may_rewrite_it_listeners_hear_it."
                                  "<locals>.veto",)
    assert heard == [("publish-1", "Skipped", "no ticket"), ("report", "Success", "no ticket")]


def test_a_durable_subscription_delivers_marks(tmp_path):
    with EventStore(tmp_path / "ledger.db") as store:
        failed_run(store)
        got = []
        sub = DurableSubscription("marks", got.append, store=store)
        sub.catch_up()
        store.mark("m1", "publish-1", "Success", reason="fixed upstream", by="bob")
        assert sub.catch_up() == 2
        assert [(e.key, e.actor, e.reason) for e in got[-2:]] == [
            ("publish-1", "bob", "fixed upstream"), ("report", "bob", "fixed upstream")]


def test_marking_a_task_that_does_not_change_the_flow_commits_no_flow_event(store):
    failed_run(store)
    store.mark("m1", "publish-1", "TimedOut", reason="it hung")  # still failed: the flow stays Failed
    assert [e.kind for e in store.history("m1")[-2:]] == ["flow", "task"]


def test_only_the_reference_tasks_decide_the_flows_state_after_a_mark(store):
    @task
    def main_work():
        raise RuntimeError("boom")

    @task
    def side():
        raise RuntimeError("side boom")

    flow = Flow("refs", [main_work, side], reference_tasks=[main_work])
    flow.run(store=store, run_id="r")
    store.mark("r", "main_work-1", "Success", reason="done by hand")
    assert store.rebuild("r").state.is_successful()  # side-1 is still Failed, but not a reference task
    assert isinstance(store.rebuild("r").tasks["side-1"], Failed)


def test_the_reason_is_in_the_hash_a_changed_reason_is_found(tmp_path):
    path = tmp_path / "ledger.db"
    with EventStore(path) as store:
        failed_run(store)
        event = store.mark("m1", "publish-1", "Success", reason="printed by hand", by="alice")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET reason = 'nobody asked' WHERE seq = ?", (event.seq,))
    conn.close()
    with EventStore(path) as store:
        report = store.verify()
        assert not report.ok and [(p.seq, p.what) for p in report.problems] == [(event.seq, "changed")]


def test_an_event_without_a_reason_hashes_as_before_schema_2(store):
    failed_run(store)
    first = store.history("m1")[0]
    from eventstore.mapper import Mapper, row_json

    row = Mapper().to_row(first)
    assert row.reason is None
    expected = hashlib.sha256(row_json((first.seq, *tuple(row)[:-1])).encode()).hexdigest()  # rule 2: seq first
    assert first.hash == expected


def downgrade_to_schema_1(path):
    """Make ``path`` what a version-1 ledger is: no reason column (nor trust tables), user_version 1."""
    from trust_fixtures import downgrade_to_schema_1 as downgrade

    downgrade(path)


def test_a_version_1_ledger_is_read_as_it_is_and_migrated_by_its_first_write(tmp_path):
    path = tmp_path / "old.db"
    with EventStore(path) as store:
        failed_run(store)
    downgrade_to_schema_1(path)
    before = path.read_bytes()
    with EventStore(path) as store:  # reading never migrates
        assert [e.reason for e in store.history("m1")] == [None] * 6
        assert store.verify().ok
    assert path.read_bytes() == before
    with EventStore(path) as store:
        store.mark("m1", "publish-1", "Success", reason="migrated", by="carol")
        assert store.verify().ok and store.history("m1")[-2].reason == "migrated"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert "reason" in [r[1] for r in conn.execute("PRAGMA table_info(events)")]
    conn.close()


def test_export_and_import_keep_the_reason_and_old_exports_still_import(tmp_path):
    with EventStore(tmp_path / "a.db") as a:
        failed_run(a)
        a.mark("m1", "publish-1", "Success", reason="by hand", by="dave")
        a.export(tmp_path / "a.jsonl")
    with EventStore(tmp_path / "b.db") as b:
        assert b.import_jsonl(tmp_path / "a.jsonl") == 8
        assert b.history("m1")[-2].reason == "by hand" and b.verify().ok
    lines = (tmp_path / "a.jsonl").read_text().splitlines()[:6]
    import json

    old = [json.loads(line) for line in lines]
    for rec in old:
        assert rec.pop("reason") is None
    (tmp_path / "old.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    with EventStore(tmp_path / "c.db") as c:
        assert c.import_jsonl(tmp_path / "old.jsonl") == 6 and c.verify().ok


def test_a_version_1_postgresql_ledger_is_read_as_it_is_and_migrated_by_its_first_append(pg_url):
    import psycopg

    from trust_fixtures import downgrade_postgres_to_schema_1

    with EventStore(pg_url) as store:
        failed_run(store)
    s = '"' + pg_url.rsplit("schema=", 1)[1] + '"'
    server = pg_url.rsplit("?", 1)[0]
    downgrade_postgres_to_schema_1(pg_url)  # what a version-1 ledger is
    with EventStore(pg_url) as store:
        assert [e.reason for e in store.history("m1")] == [None] * 6 and store.verify().ok
        store.mark("m1", "publish-1", "Success", reason="migrated", by="erin")
        assert store.history("m1")[-2].reason == "migrated" and store.verify().ok
    with psycopg.connect(server, autocommit=True) as conn:
        assert conn.execute(f"SELECT value FROM {s}.meta WHERE key = 'schema_version'").fetchone()[0] == "2"


def test_the_report_of_a_run_shows_who_marked_what_and_why():
    store = EventStore(":memory:")
    failed_run(store)
    store.mark("m1", "publish-1", "Success", reason="printed by hand", by="alice")
    page = store.report("m1")
    assert '"by":"alice","why":"printed by hand"' in page


def test_the_flow_itself_can_be_marked_by_its_name(store):
    failed_run(store)
    event = store.mark("m1", "report", "Cancelled", reason="abandoned for today", by="frank")
    assert (event.kind, event.key, type(event.old_state).__name__) == ("flow", "report", "Failed")
    assert store.history("m1")[-1] == event and store.runs()[0].state == "Cancelled"
