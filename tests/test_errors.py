"""One error tree, drawn in statemachine/errors.py; one ArgumentError; one state-class parser."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import statemachine.errors as errors
from statemachine import Flow, Secret, Task
from statemachine.errors import ArgumentError, StateLedgerError
from statemachine.filters import FilterError, parse_states
from statemachine.signals import ENDRUN
from statemachine.states import Failed, Retrying, Running, State, Success, TimedOut


def _every_error_class():
    for package in ("statemachine", "eventstore", "subscribers"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not info.name.endswith(".__main__"):  # running the CLI is not importing it
                importlib.import_module(info.name)
    found, todo = set(), [StateLedgerError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.split(".")[0] in ("statemachine", "eventstore", "subscribers") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_every_error_class_is_drawn_in_the_tree():
    drawn = errors.__doc__
    classes = _every_error_class()
    assert len(classes) >= 20
    missing = sorted(c.__name__ for c in classes if f"── {c.__name__} " not in drawn and f"── {c.__name__}\n" not in drawn)
    assert missing == []


def test_every_error_of_the_tree_derives_from_the_root():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), StateLedgerError)


def test_an_argument_error_is_also_a_value_error_and_a_type_error():
    assert issubclass(ArgumentError, ValueError) and issubclass(ArgumentError, TypeError)
    for name in ("ParameterError", "NotCallableError", "CommandInputError"):
        assert issubclass(getattr(errors, name), ArgumentError)
    assert issubclass(FilterError, ArgumentError)
    from subscribers.notifiers import NotifierConfigError

    assert issubclass(NotifierConfigError, ArgumentError) and issubclass(NotifierConfigError, errors.NotifierError)


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: Secret(""), "name"),
        (lambda: ENDRUN("not a state"), "state"),
        (lambda: Success(colour="red"), "colour"),
        (lambda: Flow("f", tasks=[Task()]).run(store=object()), "store"),
    ],
)
def test_bad_arguments_raise_argument_error_naming_the_argument(call, argument):
    with pytest.raises(ArgumentError) as info:
        call()
    assert info.value.argument == argument
    assert "\n" not in str(info.value)


def test_a_notifier_called_with_the_wrong_arguments_raises_an_argument_error():
    from subscribers.notifiers import slack_notifier

    with pytest.raises(ArgumentError, match="slack_notifier is a state handler"):
        slack_notifier(object(), Running())


# --- parse_states: the one parser of states=, only_states=, --state -------------------


def test_parse_states_takes_classes_one_or_many_in_order_each_once():
    assert parse_states(None) is None
    assert parse_states([]) == ()
    assert parse_states(Failed) == (Failed,)
    assert parse_states([Retrying, Failed, Retrying]) == (Retrying, Failed)
    assert parse_states((c for c in [TimedOut])) == (TimedOut,)


def test_parse_states_takes_names_only_when_asked():
    assert parse_states("failed, Retrying", "--state", names=True) == (Failed, Retrying)
    assert parse_states(["Success", "timedout"], names=True) == (Success, TimedOut)
    with pytest.raises(FilterError, match="from statemachine.states import Failed") as info:
        parse_states(["Failed"])
    assert (info.value.argument, info.value.value) == ("states", "Failed")


@pytest.mark.parametrize(
    "value, argument, message",
    [
        ([int], "states", "states= takes State classes (e.g. states=[Failed]), got <class 'int'> (type)"),
        (3, "only_states", "only_states= takes State classes (e.g. only_states=[Failed]), got 3 (int)"),
        ([Failed()], "ignore_states", "ignore_states= takes State classes (e.g. ignore_states=[Failed]), "
                                      "got Failed() (Failed); pass the class, not an instance: ignore_states=[Failed]"),
    ],
)
def test_parse_states_refuses_with_one_text_naming_the_argument(value, argument, message):
    with pytest.raises(FilterError) as info:
        parse_states(value, argument)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_an_unknown_state_name_lists_the_choices():
    with pytest.raises(FilterError) as info:
        parse_states("Weird", "--state", names=True)
    assert str(info.value) == f"unknown state 'Weird'; choose from {', '.join(_names())}"


def test_every_state_class_argument_uses_the_same_parser():
    from subscribers import subscribe
    from subscribers.notifiers import slack_notifier

    for call in (lambda: subscribe(print, states=[int]), lambda: slack_notifier(only_states=[int]),
                 lambda: slack_notifier(ignore_states=[int])):
        with pytest.raises(ArgumentError, match=r"= takes State classes \(e\.g\. \w+=\[Failed\]\), got <class 'int'>"):
            call()


def _names():
    from statemachine.states import STATE_CLASSES

    assert "State" in STATE_CLASSES and STATE_CLASSES["State"] is State
    return list(STATE_CLASSES)
