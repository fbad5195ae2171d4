import datetime

import pytest

from statemachine import taskcontext
from statemachine.states import (
    Cached, Cancelled, Cancelling, Crashed, Failed, Finished, Looped, Mapped, Paused, Pending, Resume,
    Retrying, Running, Scheduled, Skipped, State, Success, TimedOut, TriggerFailed, ValidationFailed,
)

from state_checks import exact

ALL = [Pending, Scheduled, Retrying, Paused, Resume, Running, Cancelling, Finished, Looped, Success,
       Cached, Mapped, Skipped, Failed, TriggerFailed, TimedOut, ValidationFailed, Crashed, Cancelled]

PREDICATES = {
    "is_pending": {Pending, Scheduled, Retrying, Paused, Resume},
    "is_scheduled": {Scheduled, Retrying, Paused, Resume},
    "is_retrying": {Retrying},
    "is_paused": {Paused},
    "is_running": {Running, Cancelling},
    "is_finished": {Finished, Looped, Success, Cached, Mapped, Skipped, Failed, TriggerFailed, TimedOut,
                    ValidationFailed, Crashed, Cancelled},
    "is_successful": {Success, Cached, Mapped, Skipped},
    "is_failed": {Failed, TriggerFailed, TimedOut, ValidationFailed, Crashed},
    "is_skipped": {Skipped},
    "is_cancelled": {Cancelled},
    "is_looped": {Looped},
    "is_mapped": {Mapped},
    "is_cached": {Cached},
}


@pytest.mark.parametrize("predicate", sorted(PREDICATES))
def test_predicates_follow_the_class_hierarchy(predicate):
    for cls in ALL:
        assert getattr(cls(), predicate)() is (cls in PREDICATES[predicate]), (cls, predicate)


def test_repr_and_str_are_the_documented_form():
    assert repr(Success("Task run succeeded.")) == 'Success("Task run succeeded.")'
    assert str(Pending()) == "Pending()"
    assert str(Running("Starting task run.")) == 'Running("Starting task run.")'


def test_fields_default_and_keep_what_is_given():
    s = Failed("boom", result=ValueError("x"), context={"a": 1})
    assert (s.message, type(s.result), s.context) == ("boom", ValueError, {"a": 1})
    assert Success().message is None and Success().result is None and Success().context == {}


def test_scheduled_and_retrying_carry_start_time_and_run_count():
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    r = Retrying("again", start_time=when, run_count=2)
    assert (r.start_time, r.run_count) == (when, 2)
    assert Scheduled().start_time.tzinfo is datetime.timezone.utc
    assert Retrying().run_count == 1
    assert r.extras() == {"start_time": when, "run_count": 2}


def test_an_unknown_field_is_refused_with_the_allowed_ones():
    with pytest.raises(TypeError, match=r"Success\(\) got unexpected field\(s\) run_count; it takes: message, result, context"):
        Success(run_count=3)


def test_equality_compares_type_result_and_extras_not_message_or_context():
    """Prefect 1: "Equality depends on state type and data, but not message or context"."""
    assert Success("a", result=1) == Success("a", result=1)
    assert Success("a", result=1) == Success("b", result=1)
    assert Success("a", result=1) != Success("a", result=2)
    assert Success("a") != Cached("a")
    assert Failed("x", result=ValueError("v")) == Failed("x", result=ValueError("v"))
    assert Failed("x", result=ValueError("v")) != Failed("x", result=KeyError("v"))
    assert Retrying(run_count=1, start_time=None) != Retrying(run_count=2, start_time=None)
    assert Success("a", context={"x": 1}) == Success("a")
    assert Success("a") != "Success"
    assert Mapped(map_states=[Success(result=1)]) != Mapped(map_states=[Failed()])


def test_the_tests_exact_helper_also_compares_the_message():
    """``exact()`` (tests/state_checks.py) is what the other tests use to check a message as well."""
    assert exact(Success("a", result=1)) == Success("a", result=1)
    assert exact(Success("a", result=1)) != Success("b", result=1)
    assert exact(Success("a", result=1)) != Success("a", result=2) and exact(Success("a")) != Cached("a")
    assert exact(Success("a")) != Success() and exact(Success()) == Success()
    assert Success("b") != exact(Success("a")) and exact(Success("a")) == exact(Success("a"))
    assert exact([Running("r"), Success("s")]) == [Running("r"), Success("s")]
    assert exact([Running("r"), Success("s")]) != [Running("r"), Success("t")]
    assert exact({"k": Success("s")}) != {"k": Success("t")} and exact(("k", Success("s"))) != ("k", Success("t"))
    assert ("k", Success("s")) in exact([("k", Success("s"))]) and ("k", Success("t")) not in exact([("k", Success("s"))])


def test_paused_waits_for_a_person_unless_given_a_start_time():
    """Prefect 1: ``Paused().start_time`` is None (indefinite); ``Resume`` is Scheduled at now."""
    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    assert Paused().start_time is None and Paused(start_time=when).start_time == when
    assert Paused().is_scheduled() and Resume().start_time is not None


def test_retrying_and_looped_counts_come_from_the_running_task():
    """Prefect 1 reads ``task_run_count`` / ``task_loop_count`` from the context, default 1."""
    assert (Retrying().run_count, Looped().loop_count) == (1, 1)
    with taskcontext.context(task_run_count=3, task_loop_count=4):
        assert (Retrying().run_count, Looped().loop_count) == (3, 4)
    assert Retrying(run_count=7).run_count == 7


def test_mapped_counts_its_children():
    m = Mapped("Ready to proceed with mapping.", map_states=[Success(), Failed()])
    assert m.n_map_states == 2 and Mapped(n_map_states=5).n_map_states == 5
    assert Mapped().map_states == [] and Mapped().n_map_states == 0


def test_children_and_parents_walk_the_hierarchy():
    assert Paused.parents() == [Scheduled, Pending, State]
    assert Paused.parents(include_self=True, names_only=True) == ["Scheduled", "Pending", "State", "Paused"]
    assert set(Failed.children(names_only=True)) >= {"TimedOut", "TriggerFailed", "ValidationFailed", "Crashed"}
    assert set(Success.children()) >= {Cached, Mapped, Skipped}
    assert Success not in Success.children() and Success in Success.children(include_self=True)


def test_states_hash_consistently_with_equality():
    assert hash(Success("a", result=1)) == hash(Success("a", result=1))
    assert len({Pending(), Pending()}) == 1
