"""The codec: states to JSON-able data and back, results never pickled."""

from __future__ import annotations

import datetime
import json

import pytest

from eventstore import codec
from eventstore.codec import CutResult, DescribedResult, RESULT_LIMIT
from statemachine import signals
from statemachine.errors import IllegalTransitionError
from statemachine.states import (
    STATE_CLASSES, Crashed, Failed, Looped, Mapped, Paused, Pending, Retrying, Running, Scheduled, State, Success,
    ValidationFailed,
)

from state_checks import exact


def roundtrip(state: State) -> State:
    text = codec.state_to_json(state)
    json.loads(text)  # plain JSON
    return codec.state_from_json(text)


@pytest.mark.parametrize("name", sorted(STATE_CLASSES))
def test_every_state_class_round_trips_with_its_message(name):
    state = STATE_CLASSES[name]("a message")
    back = roundtrip(state)
    assert type(back) is type(state)
    assert back == state
    assert repr(back) == repr(state)


def test_extra_fields_round_trip_with_times_in_utc():
    start = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc)
    back = roundtrip(Retrying("again", start_time=start, run_count=2))
    assert back.start_time == start and back.start_time.tzinfo is not None
    assert back.run_count == 2
    local = datetime.datetime(2026, 1, 2, 5, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert '"start_time":"2026-01-02T03:04:05.000000+00:00"' in codec.state_to_json(Scheduled(start_time=local))


@pytest.mark.parametrize("result", [
    1, 2.5, "text", True, [1, "two", None], {"nested": {"list": [1, 2], "ü": "ünïcode"}}, (1, "pair"), [],
])
def test_json_results_are_lossless(result):
    back = roundtrip(Success("ok", result=result))
    assert back.result == result and type(back.result) is type(result)


def test_none_result_and_message_stay_none():
    back = roundtrip(Pending())
    assert back.message is None and back.result is None and repr(back) == "Pending()"


@pytest.mark.parametrize("exc", [TimeoutError("no answer in 30s"), OSError("warehouse unreachable"),
                                 KeyError("missing"), ValueError("bad", 3)])
def test_builtin_exceptions_are_rebuilt(exc):
    back = roundtrip(Failed(f"Error: {exc!r}", result=exc))
    assert type(back.result) is type(exc)
    assert back.result.args == exc.args
    assert repr(back.result) == repr(exc)
    assert exact(back) == Failed(f"Error: {exc!r}", result=exc)


def test_signals_are_rebuilt_with_their_attributes():
    sig = signals.FAIL("special")
    sig.flag = True
    sig.value = {"k": 1}
    back = roundtrip(Failed("special", result=sig)).result
    assert isinstance(back, signals.FAIL)
    assert back.flag is True and back.value == {"k": 1} and back.message == "special"
    assert repr(back) == "FAIL('special')"


def test_our_own_errors_are_rebuilt():
    err = IllegalTransitionError("refused edge")
    back = roundtrip(Failed("x", result=err)).result
    assert isinstance(back, IllegalTransitionError) and str(back) == "refused edge"


class Custom(Exception):
    def __init__(self, msg):
        super().__init__(msg)
        self.code = 503
        self.payload = object()  # not JSON: left out


def test_other_objects_become_a_read_only_description():
    back = roundtrip(Failed("x", result=Custom("gateway"))).result
    assert isinstance(back, DescribedResult)
    assert repr(back) == "Custom('gateway')" and str(back) == "gateway"
    assert back.type == "Custom" and back.module == __name__
    assert back.code == 503 and back.args == ("gateway",)
    with pytest.raises(AttributeError, match="payload"):
        back.payload
    with pytest.raises(AttributeError, match="read-only"):
        back.code = 1


class BrokenRepr:
    def __repr__(self):
        raise RuntimeError("no repr")


def test_an_object_whose_repr_raises_is_still_recorded():
    back = roundtrip(Success("ok", result=BrokenRepr())).result
    assert "BrokenRepr" in repr(back) and "raised RuntimeError" in repr(back)


def test_nothing_is_pickled():
    text = codec.state_to_json(Success("ok", result=Custom("x")))
    assert "pickle" not in text and json.loads(text)["result_described"]["repr"] == "Custom('x')"


def test_large_results_are_cut_with_a_marker():
    big = ["x" * 1000] * 200  # ~200 kB of JSON
    text = codec.state_to_json(Success("ok", result=big))
    assert len(text) < RESULT_LIMIT + 500
    back = codec.state_from_json(text).result
    assert isinstance(back, CutResult)
    assert back.size == len(codec.to_json(big)) and len(back) == RESULT_LIMIT
    assert "cut" in repr(back)
    long_text = codec.state_from_json(codec.state_to_json(Success(result="y" * (RESULT_LIMIT + 10)))).result
    assert isinstance(long_text, CutResult) and long_text.size == RESULT_LIMIT + 12


def test_a_flow_result_is_a_marker_not_the_task_states():
    state = Success("All reference tasks succeeded.", result={object(): Success("Task run succeeded.")})
    data = json.loads(codec.state_to_json(state))
    assert data == {"type": "Success", "message": "All reference tasks succeeded.", "result_flow": True}
    assert codec.state_from_json(codec.state_to_json(state)).result is None


class MyFailed(Failed):
    pass


def test_a_user_state_subclass_is_stored_as_its_library_base_and_named():
    data = json.loads(codec.state_to_json(MyFailed("mine")))
    assert data["type"] == "Failed" and data["class"].endswith("MyFailed")
    assert type(codec.state_from_json(codec.state_to_json(MyFailed("mine")))) is Failed


def test_json_context_round_trips_and_the_rest_is_described():
    back = roundtrip(Running("r", context={"run_id": "x", "n": 1, "obj": object()}))
    assert back.context["run_id"] == "x" and back.context["n"] == 1
    assert "object" in back.context["obj"]["described"]["repr"]


def test_texts_are_compact_and_deterministic():
    a = codec.state_to_json(Success("ok", result={"b": 1, "a": [1, 2]}))
    assert a == codec.state_to_json(Success("ok", result={"b": 1, "a": [1, 2]}))
    assert ", " not in a and ": " not in a


def test_the_row_encoder_of_the_hash_chain_is_canonical_json():
    from eventstore.mapper import row_json as _row_json

    row = ("é\u2028\"quote\"\\\n\t\x00", 1, None, "[]", '{"a":"b"}', "日本")
    assert _row_json(row) == codec.to_json(row) == json.dumps(row, separators=(",", ":"), ensure_ascii=False)


def test_every_stored_text_goes_through_mask(tmp_path, monkeypatch):
    from statemachine.secrets import Secret, forget_all

    from eventstore import EventStore
    from statemachine import Flow, task

    monkeypatch.setenv("STATELEDGER_SECRET_API_TOKEN", "s3cr3t-t0ken-value")

    @task
    def leak():
        token = Secret("API_TOKEN").get()
        raise RuntimeError(f"login refused for {token}")

    with Flow("leaky") as flow:
        leak()
    try:
        with EventStore(tmp_path / "l.db") as store:
            state = flow.run(store=store, run_id="r")
            memory = EventStore(":memory:")
            flow.run(store=memory, run_id="r")
            assert "***" in store.history("r")[-2].new_state.message
            assert all("s3cr3t" not in r for row in memory.recorder.rows for r in row if isinstance(r, str))
            assert store.verify().ok
    finally:
        forget_all()
    assert state.is_failed()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("l.db*"))
    assert b"s3cr3t-t0ken-value" not in data and b"***" in data


def test_a_described_result_stays_small_whatever_it_carries():
    sig = signals.FAIL("x" * 100_000)
    sig.value = list(range(50_000))
    text = codec.state_to_json(Failed("big", result=sig))
    assert len(text) < 4 * RESULT_LIMIT
    back = codec.state_from_json(text).result
    assert isinstance(back, signals.FAIL) and back.value.startswith("<cut: ")


def test_a_task_result_that_maps_names_to_states_is_kept():
    result = {"a": Success("ok")}
    data = json.loads(codec.state_to_json(Success("done", result=result)))
    assert "result_flow" not in data and data["result_described"]["type"] == "dict"


def test_the_new_states_keep_their_fields():
    """Mapped keeps its children (states in the ledger too), Looped its count, Paused its open start."""
    mapped = Mapped("Ready to proceed with mapping.", map_states=[Success(result=1), Failed("x", result=ValueError("v"))],
                    result=[1, None])
    back = roundtrip(mapped)
    assert type(back) is Mapped and exact(back) == mapped and back.n_map_states == 2
    assert [type(s) for s in back.map_states] == [Success, Failed] and back.map_states[1].message == "x"
    assert roundtrip(Mapped(n_map_states=3)).n_map_states == 3
    assert roundtrip(Looped("again", result=10, loop_count=4)).loop_count == 4
    assert roundtrip(Paused()).start_time is None
    assert type(roundtrip(Crashed("died"))) is Crashed and type(roundtrip(ValidationFailed())) is ValidationFailed
