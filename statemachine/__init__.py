"""stateledger's core: states, the legal graph, the transition pipeline, Task and Flow.

It imports neither SQLite nor blinker: the pipeline talks to a *ledger*
(``append(event)``) and a *bus* (``publish(event, sender)``), wired by default
to ``eventstore`` and ``subscribers`` in ``statemachine.wiring``.
"""

from __future__ import annotations

from . import signals, triggers
from .flow import Flow
from .mapping import flatten, unmapped
from .masking import register_secret
from .secrets import Secret
from .task import Parameter, Task, task

__all__ = ["Task", "Flow", "task", "Parameter", "Secret", "register_secret", "signals", "triggers", "unmapped",
           "flatten"]
__version__ = "0.1.0"
