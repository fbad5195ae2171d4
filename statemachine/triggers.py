"""Triggers: may a task run, given its upstream tasks' final states?

A trigger is ``trigger(upstream_states: dict[Task, State]) -> bool``; it returns
True to run, or raises ``TRIGGERFAIL`` (the task ends ``TriggerFailed``) or
``PAUSE`` (the task ends ``Paused``). Messages are Prefect 1's.
"""

from __future__ import annotations

from typing import Any, Mapping

from .signals import PAUSE, TRIGGERFAIL
from .states import State

__all__ = [
    "all_successful",
    "all_failed",
    "any_successful",
    "any_failed",
    "all_finished",
    "always_run",
    "manual_only",
]


def all_successful(upstream_states: Mapping[Any, State]) -> bool:
    """Run if every upstream task succeeded (skipped counts as success). The default."""
    if not all(s.is_successful() for s in upstream_states.values()):
        raise TRIGGERFAIL('Trigger was "all_successful" but some of the upstream tasks failed.')
    return True


def all_failed(upstream_states: Mapping[Any, State]) -> bool:
    """Run if every upstream task failed."""
    if not all(s.is_failed() for s in upstream_states.values()):
        raise TRIGGERFAIL('Trigger was "all_failed" but some of the upstream tasks succeeded.')
    return True


def any_successful(upstream_states: Mapping[Any, State]) -> bool:
    """Run if at least one upstream task succeeded (or there is none)."""
    if upstream_states and not any(s.is_successful() for s in upstream_states.values()):
        raise TRIGGERFAIL('Trigger was "any_successful" but none of the upstream tasks succeeded.')
    return True


def any_failed(upstream_states: Mapping[Any, State]) -> bool:
    """Run if at least one upstream task failed (or there is none)."""
    if upstream_states and not any(s.is_failed() for s in upstream_states.values()):
        raise TRIGGERFAIL('Trigger was "any_failed" but none of the upstream tasks failed.')
    return True


def all_finished(upstream_states: Mapping[Any, State]) -> bool:
    """Run once every upstream task finished, however it finished."""
    if not all(s.is_finished() for s in upstream_states.values()):
        raise TRIGGERFAIL('Trigger was "all_finished" but some of the upstream tasks were not finished.')
    return True


always_run = all_finished


def manual_only(upstream_states: Mapping[Any, State]) -> bool:
    """Never run on its own: the task ends ``Paused`` (it never prompts)."""
    raise PAUSE('Trigger function is "manual_only"')
