"""Triggers: may a task run, given its upstream tasks' final states?

A trigger is ``trigger(upstream_states: dict[Task, State]) -> bool``; it returns
True to run, or raises ``TRIGGERFAIL`` (the task ends ``TriggerFailed``) or
``PAUSE`` (the task ends ``Paused``). It is called for root tasks too, with an
empty dict (so ``manual_only`` pauses a root task). A ``Mapped`` upstream state
counts as its children's states. Messages are Prefect 1's.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .errors import ArgumentError
from .signals import PAUSE, SKIP, TRIGGERFAIL
from .states import Mapped, State

__all__ = [
    "all_successful",
    "all_failed",
    "any_successful",
    "any_failed",
    "all_finished",
    "always_run",
    "manual_only",
    "some_failed",
    "some_successful",
    "not_all_skipped",
    "SKIP_MESSAGE",
]

#: Why a task whose upstream task was skipped is skipped too (Prefect 1's words).
SKIP_MESSAGE = (
    "Upstream task was skipped; if this was not the intended behavior, "
    "consider changing `skip_on_upstream_skip=False` for this task."
)

Trigger = Callable[[Mapping[Any, State]], bool]


def _all_states(upstream_states: Mapping[Any, State]) -> list[State]:
    """The upstream states, a mapped task's children in place of its ``Mapped`` state."""
    found: list[State] = []
    for state in upstream_states.values():
        if isinstance(state, Mapped):
            found.extend(state.map_states)
        else:
            found.append(state)
    return found


def all_successful(upstream_states: Mapping[Any, State]) -> bool:
    """Run if every upstream task succeeded (skipped counts as success). The default."""
    for s in _all_states(upstream_states):  # a loop, not all(generator): the default trigger runs per task
        if not s.is_successful():
            raise TRIGGERFAIL('Trigger was "all_successful" but some of the upstream tasks failed.')
    return True


def all_failed(upstream_states: Mapping[Any, State]) -> bool:
    """Run if every upstream task failed."""
    if not all(s.is_failed() for s in _all_states(upstream_states)):
        raise TRIGGERFAIL('Trigger was "all_failed" but some of the upstream tasks succeeded.')
    return True


def any_successful(upstream_states: Mapping[Any, State]) -> bool:
    """Run if at least one upstream task succeeded (or there is none)."""
    if upstream_states and not any(s.is_successful() for s in _all_states(upstream_states)):
        raise TRIGGERFAIL('Trigger was "any_successful" but none of the upstream tasks succeeded.')
    return True


def any_failed(upstream_states: Mapping[Any, State]) -> bool:
    """Run if at least one upstream task failed (or there is none)."""
    if upstream_states and not any(s.is_failed() for s in _all_states(upstream_states)):
        raise TRIGGERFAIL('Trigger was "any_failed" but none of the upstream tasks failed.')
    return True


def all_finished(upstream_states: Mapping[Any, State]) -> bool:
    """Run once every upstream task finished, however it finished."""
    if not all(s.is_finished() for s in _all_states(upstream_states)):
        raise TRIGGERFAIL('Trigger was "all_finished" but some of the upstream tasks were not finished.')
    return True


always_run = all_finished


def manual_only(upstream_states: Mapping[Any, State]) -> bool:
    """Never run on its own: the task ends ``Paused`` (it never prompts)."""
    raise PAUSE('Trigger function is "manual_only"')


def _thresholds(what: str, at_least: float | None, at_most: float | None) -> Callable[[int], tuple[float, float]]:
    for label, value in (("at_least", at_least), ("at_most", at_most)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ArgumentError(f"{what}({label}=...) takes a number >= 0 (below 1: a fraction), got {value!r}")

    def bounds(total: int) -> tuple[float, float]:
        low = 0.0 if at_least is None else (total * at_least if at_least < 1 else at_least)
        high = float(total) if at_most is None else (total * at_most if at_most < 1 else at_most)
        return low, high

    return bounds


def some_failed(at_least: float | None = None, at_most: float | None = None) -> Trigger:
    """A trigger: run if the number of failed upstream tasks is within bounds (below 1: a fraction)."""
    bounds = _thresholds("some_failed", at_least, at_most)

    def _some_failed(upstream_states: Mapping[Any, State]) -> bool:
        if not upstream_states:
            return True
        states = _all_states(upstream_states)
        low, high = bounds(len(states))
        if not low <= sum(s.is_failed() for s in states) <= high:
            raise TRIGGERFAIL('Trigger was "some_failed" but thresholds were not met.')
        return True

    return _some_failed


def some_successful(at_least: float | None = None, at_most: float | None = None) -> Trigger:
    """A trigger: run if the number of successful upstream tasks is within bounds (below 1: a fraction)."""
    bounds = _thresholds("some_successful", at_least, at_most)

    def _some_successful(upstream_states: Mapping[Any, State]) -> bool:
        if not upstream_states:
            return True
        states = _all_states(upstream_states)
        low, high = bounds(len(states))
        if not low <= sum(s.is_successful() for s in states) <= high:
            raise TRIGGERFAIL('Trigger was "some_successful" but thresholds were not met.')
        return True

    return _some_successful


def not_all_skipped(upstream_states: Mapping[Any, State]) -> bool:
    """Run if every upstream task succeeded and not all of them were skipped."""
    states = _all_states(upstream_states)
    if all(s.is_skipped() for s in states):
        raise SKIP("All upstreams were skipped", result=None)
    if not all(s.is_successful() for s in states):
        raise TRIGGERFAIL('Trigger was "not_all_skipped" but some of the upstream tasks failed.')
    return True
