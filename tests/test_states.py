import datetime

import pytest

from statemachine.states import (
    Cached, Cancelled, Failed, Finished, Paused, Pending, Resume, Retrying, Running, Scheduled, Skipped,
    Success, TimedOut, TriggerFailed,
)

ALL = [Pending, Scheduled, Retrying, Paused, Resume, Running, Finished, Success, Cached, Skipped,
       Failed, TriggerFailed, TimedOut, Cancelled]

PREDICATES = {
    "is_pending": {Pending, Scheduled, Retrying, Paused, Resume},
    "is_scheduled": {Scheduled, Retrying},
    "is_retrying": {Retrying},
    "is_paused": {Paused},
    "is_running": {Running},
    "is_finished": {Finished, Success, Cached, Skipped, Failed, TriggerFailed, TimedOut, Cancelled},
    "is_successful": {Success, Cached, Skipped},
    "is_failed": {Failed, TriggerFailed, TimedOut},
    "is_skipped": {Skipped},
    "is_cancelled": {Cancelled},
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
    assert Retrying().run_count is None
    assert r.extras() == {"start_time": when, "run_count": 2}


def test_an_unknown_field_is_refused_with_the_allowed_ones():
    with pytest.raises(TypeError, match=r"Success\(\) got unexpected field\(s\) run_count; it takes: message, result, context"):
        Success(run_count=3)


def test_equality_compares_type_message_result_and_extras():
    assert Success("a", result=1) == Success("a", result=1)
    assert Success("a", result=1) != Success("a", result=2)
    assert Success("a") != Cached("a")
    assert Failed("x", result=ValueError("v")) == Failed("x", result=ValueError("v"))
    assert Retrying(run_count=1, start_time=None) != Retrying(run_count=2, start_time=None)
    assert Success("a", context={"x": 1}) == Success("a")
    assert Success("a") != "Success"


def test_states_hash_consistently_with_equality():
    assert hash(Success("a", result=1)) == hash(Success("a", result=1))
    assert len({Pending(), Pending()}) == 1
