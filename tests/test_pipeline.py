"""The transition pipeline: handlers fold in order, rewrites, failures, legality, commit, broadcast."""

import pytest
from state_checks import exact

from statemachine import Flow, Task, task
from statemachine.errors import IllegalTransitionError, LedgerError
from statemachine.pipeline import Runtime, Subject, transition
from statemachine.states import Failed, Pending, Running, Skipped, Success
from statemachine.testing import ListLedger
from subscribers import subscribe


def moves(ledger):
    return [(e.key, type(e.old_state).__name__, type(e.new_state).__name__) for e in ledger.events]


def test_handlers_run_in_order_each_seeing_the_previous_output():
    seen = []

    def first(obj, old, new):
        seen.append(("first", new))
        return Success("rewritten by first") if new.is_failed() else new

    def second(obj, old, new):
        seen.append(("second", new))
        return None  # keeps the proposal

    @task(state_handlers=[first, second])
    def boom():
        raise ValueError("x")

    with Flow("f") as flow:
        t = boom()
    state = flow.run(store=ListLedger())
    assert exact(state.result[t]) == Success("rewritten by first")
    assert [name for name, _ in seen] == ["first", "second", "first", "second"]
    assert exact(seen[3][1]) == Success("rewritten by first")


def test_a_rewrite_is_recorded_with_the_proposal_and_the_handler():
    def forgive(obj, old, new):
        return Success("forgiven") if new.is_failed() else new

    @task(state_handlers=[forgive])
    def boom():
        raise TimeoutError("slow")

    ledger = ListLedger()
    with Flow("f") as flow:
        boom()
    flow.run(store=ledger)
    rewritten = [e for e in ledger.events if e.rewritten_by]
    assert len(rewritten) == 1
    assert rewritten[0].proposed_state.message == "Error during execution of task: TimeoutError('slow')"
    assert exact(rewritten[0].new_state) == Success("forgiven")
    assert rewritten[0].rewritten_by == (f"{__name__}.test_a_rewrite_is_recorded_with_the_proposal_and_the_handler.<locals>.forgive",)
    assert all(e.proposed_state is None for e in ledger.events if not e.rewritten_by)


def test_a_handler_returning_an_equal_copy_records_no_proposal():
    """The proposal is recorded exactly when ``rewritten_by`` names a handler."""
    import copy

    def copies(obj, old, new):
        return copy.copy(new)

    @task(state_handlers=[copies])
    def fine():
        return 1

    ledger = ListLedger()
    with Flow("f") as flow:
        fine()
    state = flow.run(store=ledger)
    assert state.is_successful()
    task_events = [e for e in ledger.events if e.kind == "task"]
    assert len(task_events) == 2
    assert all(e.new_state is not None for e in task_events)
    assert [(e.rewritten_by, e.proposed_state) for e in task_events] == [((), None), ((), None)]


def test_the_pipeline_passes_a_frozen_move_between_its_steps():
    import dataclasses

    from statemachine.pipeline import Move, check_legality, run_handlers

    move = Move(Running(), Success(), Success())
    with pytest.raises(dataclasses.FrozenInstanceError):
        move.final = Failed()
    assert not hasattr(move, "__dict__")
    subject = Subject(object(), "task", "t", "t-1")
    assert run_handlers(subject, move, ()) is move
    assert check_legality(move) is move
    refused = check_legality(Move(Pending(), Running(), Success(), ("m.h",)))
    assert (type(refused.final), refused.proposed, refused.rewritten_by, refused.halted) == (
        Failed, Success(), ("m.h",), True)


def test_a_raising_handler_fails_the_task_and_ends_its_run():
    calls = []

    def broken(obj, old, new):
        calls.append(type(new).__name__)
        if new.is_running():
            raise ConnectionError("webhook returned 500")
        return new

    ran = []

    @task(state_handlers=[broken], max_retries=3, retry_delay=0)
    def body():
        ran.append(1)

    ledger = ListLedger()
    with Flow("f") as flow:
        t = body()
    state = flow.run(store=ledger)
    final = state.result[t]
    assert type(final) is Failed
    assert "broken" in final.message and "ConnectionError('webhook returned 500')" in final.message
    assert isinstance(final.result, ConnectionError)
    assert ran == [] and calls == ["Running"]  # not called again for its own failure, no retry
    assert moves(ledger)[1:2] == [("body-1", "Pending", "Failed")]
    assert state.is_failed()


def test_a_handler_returning_a_non_state_fails_the_task_naming_it():
    def sloppy(obj, old, new):
        return "ok"

    t = Task(state_handlers=[sloppy])
    state = Flow("f", tasks=[t]).run(store=ListLedger())
    final = state.result[t]
    assert type(final) is Failed
    assert final.message.endswith("sloppy returned a str, not a State")
    assert isinstance(final.result, TypeError)


def test_an_illegal_rewrite_is_refused_as_failed_naming_handler_and_edge():
    """Pending -> Success skips running the task: no edge allows it (Running -> Pending is legal:
    a task body may end in ENDRUN(Pending()) as in Prefect 1)."""
    def done_already(obj, old, new):
        return Success("not run") if new.is_running() else new

    t = Task(state_handlers=[done_already])
    ledger = ListLedger()
    state = Flow("f", tasks=[t]).run(store=ledger)
    final = state.result[t]
    assert type(final) is Failed
    assert "done_already" in final.message and "Pending -> Success" in final.message
    last = [e for e in ledger.events if e.kind == "task"][-1]
    assert repr(last.proposed_state) == repr(Success("not run"))
    assert last.rewritten_by[-1].endswith("done_already")


def test_an_illegal_move_proposed_by_the_engine_is_a_bug():
    rt = Runtime("r", "f", ListLedger())
    with pytest.raises(IllegalTransitionError, match="This is a bug"):
        transition(Subject(object(), "task", "t", "t-1"), Success(), Running(), rt)


def test_commit_happens_before_broadcast_and_a_failing_ledger_stops_the_run():
    class Refusing:
        path = "/nowhere/ledger.db"

        def append(self, event):
            raise OSError("disk full")

    ran = []

    @task
    def first():
        ran.append("first")

    with Flow("f") as flow:
        first()
    broadcast = []
    with subscribe(broadcast.append):
        with pytest.raises(LedgerError, match=r"Could not commit flow f Scheduled\(\) -> Running.*disk full") as info:
            flow.run(store=Refusing())
    assert info.value.path == "/nowhere/ledger.db"
    assert ran == []
    assert broadcast == []  # nothing uncommitted was ever broadcast


def test_each_event_is_broadcast_right_after_its_commit():
    log = []

    class Logging(ListLedger):
        def append(self, event):
            committed = super().append(event)
            log.append(("commit", committed.seq))
            return committed

    @task
    def first():
        return 1

    with Flow("f") as flow:
        first()
    with subscribe(lambda event: log.append(("broadcast", event.seq))):
        flow.run(store=Logging())
    assert len(log) == 8
    assert log == [(step, seq) for seq in range(1, 5) for step in ("commit", "broadcast")]


def test_a_ledger_failure_mid_run_stops_before_the_next_task_body():
    class FailsAfter(ListLedger):
        def append(self, event):
            if len(self.events) == 3:
                raise OSError("database is locked")
            return super().append(event)

    ran = []

    @task
    def a():
        ran.append("a")

    @task
    def b(x):
        ran.append("b")

    with Flow("f") as flow:
        b(a())
    with pytest.raises(LedgerError):
        flow.run(store=FailsAfter())
    assert ran == ["a"]


def test_global_handlers_run_after_the_objects_own():
    from subscribers import add_state_handler

    order = []

    def own(obj, old, new):
        order.append("own")
        return new

    def everywhere(obj, old, new):
        order.append("global")
        return Skipped("globally skipped") if new.is_running() and obj.name == "t" else new

    handle = add_state_handler(everywhere, kinds=["task"])
    try:
        t = Task("t", state_handlers=[own])
        state = Flow("f", tasks=[t]).run(store=ListLedger())
    finally:
        handle.remove()
    assert order == ["own", "global"]
    assert exact(state.result[t]) == Skipped("globally skipped")
