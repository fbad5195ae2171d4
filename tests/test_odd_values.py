"""No input aborts a run: whatever a task returns or raises, or a handler puts in a state, it commits.

Each odd value is run through a real flow on both recorders; the run ends as
it should, rebuilds, verifies, and exports as strict JSON and as CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os

import pytest

from eventstore import EventStore
from eventstore.codec import MESSAGE_LIMIT, CutMessage, DescribedResult
from eventstore.protocol import Query
from statemachine import Flow, task
from statemachine.errors import LedgerError
from statemachine.states import Failed, Success

NON_UTF8_NAME = os.fsdecode(b"caf\xe9-report.txt")  # a lone surrogate, as listdir() gives it
HUGE = 10**5000


class BadRepr(Exception):
    def __repr__(self):
        raise RuntimeError("no repr for you")


class BadReprValue:
    def __repr__(self):
        raise RuntimeError("no repr")

    def __str__(self):
        raise RuntimeError("no str")


def strict(constant):
    raise ValueError(f"not strict JSON: {constant}")


def run_one(store, fn, handlers=(), run_id="odd"):
    """Run a one-task flow; return (flow state, the task's state as rebuilt from the ledger)."""
    t = task(fn, name="odd", state_handlers=list(handlers))
    flow = Flow("odd-flow", [t])
    state = flow.run(store=store, run_id=run_id)
    view = store.rebuild(run_id)
    assert view.state == state or type(view.state) is type(state)
    return state, view.tasks["odd-1"]


def exports_are_strict(store):
    """JSON lines parse without NaN/Infinity; the CSV export writes as UTF-8."""
    buffer = io.StringIO()
    store.export(buffer)
    lines = buffer.getvalue().splitlines()
    assert lines
    for line in lines:
        json.loads(line, parse_constant=strict)
        line.encode("utf-8")  # no lone surrogate reached the text
    out = io.StringIO()
    store.export(out, format="csv")
    out.getvalue().encode("utf-8")
    limit = csv.field_size_limit(1 << 24)  # a cut message is 64 KiB, its state text more
    try:
        assert len(list(csv.reader(io.StringIO(out.getvalue())))) == len(lines) + 1
    finally:
        csv.field_size_limit(limit)


def check_ledger(store):
    assert store.verify().ok
    exports_are_strict(store)


def test_a_result_holding_a_lone_surrogate_commits_and_comes_back_the_same(store):
    state, back = run_one(store, lambda: {"file": NON_UTF8_NAME, "names": [NON_UTF8_NAME]})
    assert state.is_successful()
    assert back.result == {"file": NON_UTF8_NAME, "names": [NON_UTF8_NAME]}
    check_ledger(store)


def test_an_exception_holding_a_lone_surrogate_commits(store):
    def fails():
        raise FileNotFoundError(NON_UTF8_NAME)

    state, back = run_one(store, fails)
    assert state.is_failed() and back.is_failed()
    assert isinstance(back.result, FileNotFoundError) and back.result.args == (NON_UTF8_NAME,)
    check_ledger(store)


def test_a_message_holding_a_lone_surrogate_commits(store):
    def rename(obj, old, new):
        if new.is_successful():
            return Success(f"wrote {NON_UTF8_NAME}", result=1)

    state, back = run_one(store, lambda: 1, [rename])
    assert back.message == f"wrote {NON_UTF8_NAME}"
    check_ledger(store)


def test_an_int_over_4300_digits_is_described(store):
    state, back = run_one(store, lambda: HUGE)
    assert state.is_successful()
    assert isinstance(back.result, DescribedResult)
    assert repr(back.result) == "<int of about 5001 digits>" and back.result.type == "int"
    check_ledger(store)


def test_a_huge_int_inside_a_result_is_described(store):
    state, back = run_one(store, lambda: {"n": HUGE})
    assert state.is_successful() and isinstance(back.result, DescribedResult)
    check_ledger(store)


def test_an_exception_whose_repr_raises_fails_the_task_not_the_run(store):
    def fails():
        raise BadRepr("the message")

    state, back = run_one(store, fails)
    assert state.is_failed()
    assert back.message == "Error during execution of task: <unrepresentable BadRepr>"
    assert isinstance(back.result, DescribedResult) and str(back.result) == "the message"
    check_ledger(store)


def test_a_handler_raising_an_exception_whose_repr_raises_fails_the_task(store):
    def handler(obj, old, new):
        if new.is_running():
            raise BadRepr("boom")

    state, back = run_one(store, lambda: 1, [handler])
    assert back.is_failed() and "raised <unrepresentable BadRepr>" in back.message
    check_ledger(store)


def test_a_result_whose_repr_and_str_raise_is_recorded(store):
    state, back = run_one(store, BadReprValue)
    assert state.is_successful()
    assert "unrepresentable BadReprValue" in repr(back.result)
    check_ledger(store)


def test_a_huge_exception_message_is_cut_at_64_kib_with_a_marker(store):
    def fails():
        raise ValueError("x" * 5_000_000)

    state, back = run_one(store, fails)
    assert state.is_failed()
    assert isinstance(back.message, CutMessage) and len(back.message) == MESSAGE_LIMIT
    assert back.message.size > 5_000_000
    assert back.message.startswith("Error during execution of task: ValueError('xxx")
    biggest = max(len(r.new_state) for r in store.recorder.select(Query()))
    assert biggest < 4 * MESSAGE_LIMIT  # message, repr, str and args are all cut
    check_ledger(store)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_stored_as_strings_and_come_back_as_floats(store, value):
    state, back = run_one(store, lambda: value)
    assert state.is_successful()
    assert isinstance(back.result, float)
    assert (math.isnan(back.result) if math.isnan(value) else back.result == value)
    stored = [r.new_state for r in store.recorder.select(Query())]
    assert all("NaN" not in text and "Infinity" not in text for text in stored)
    check_ledger(store)


def test_nan_inside_a_result_and_a_context_is_described(store):
    def handler(obj, old, new):
        if new.is_successful():
            new.context["ratio"] = math.nan
            new.context["big"] = HUGE
            new.context["odd"] = BadReprValue()
        return new

    state, back = run_one(store, lambda: {"ratio": math.nan}, [handler])
    assert state.is_successful()
    assert isinstance(back.result, DescribedResult) and repr(back.result) == "{'ratio': nan}"
    assert back.context["ratio"]["described"]["repr"] == "nan"
    check_ledger(store)


def test_a_message_that_is_not_text_is_stored_as_its_str(store):
    def handler(obj, old, new):
        if new.is_successful():
            return Success(BadReprValue(), result=1)

    state, back = run_one(store, lambda: 1, [handler])
    assert state.is_successful() and "unrepresentable BadReprValue" in back.message
    check_ledger(store)


def test_odd_values_rebuild_in_a_new_store_after_reopening(tmp_path):
    path = tmp_path / "odd.db"
    with EventStore(path) as s:
        run_one(s, lambda: [NON_UTF8_NAME, math.inf, HUGE])
    with EventStore(path) as s:
        back = s.rebuild("odd").tasks["odd-1"]
        assert isinstance(back.result, DescribedResult)
        assert s.verify().ok


def test_only_a_storage_failure_stops_a_run_and_it_says_which(tmp_path):
    path = tmp_path / "l.db"
    store = EventStore(path)
    flow = Flow("f", [task(lambda: 1, name="one")])
    store.close()  # a real storage failure: this store can no longer write
    with pytest.raises(LedgerError) as info:
        flow.run(store=store, run_id="stopped")
    message = str(info.value)
    assert "was closed" in message and "writable" not in message


def test_a_failed_commit_message_is_short_whatever_the_state_holds():
    class Refusing:
        path = "/nowhere"

        def append(self, event):
            raise OSError("disk full")

    flow = Flow("f", [task(lambda: 1, name="one")])
    with pytest.raises(LedgerError) as info:
        flow.run(store=Refusing(), run_id="r")
    assert "OSError: disk full" in str(info.value) and len(str(info.value)) < 600


def test_a_failed_state_with_every_odd_part_at_once_commits(store):
    def handler(obj, old, new):
        if new.is_failed():
            return Failed("x" * (MESSAGE_LIMIT + 5) + NON_UTF8_NAME, result=[BadReprValue(), math.nan])

    def fails():
        raise BadRepr()

    state, back = run_one(store, fails, [handler])
    assert back.is_failed() and isinstance(back.message, CutMessage)
    check_ledger(store)
