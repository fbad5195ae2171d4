"""The errors stateledger raises, under one root.

::

    StateLedgerError
    ├── FlowDefinitionError (ValueError)     a flow or task that cannot run as written
    │   ├── CycleError                        the dependencies form a cycle
    │   └── FlowContextError                  a task called outside ``with Flow(...)``
    ├── ParameterError (ValueError)          an unknown or missing flow parameter
    ├── CommandInputError (ValueError)       bad CLI input: a flow file, a --param, a --handler
    ├── NotCallableError (TypeError)         a task, handler, callback or listener that is not callable
    ├── IllegalTransitionError               the engine proposed a move the graph refuses (a bug)
    ├── SecretNotFoundError (KeyError)       a secret missing from every place we looked
    ├── LedgerError                          the ledger cannot be opened, read or written
    └── NotifierError                        a notification could not be delivered

The ledger and notifier packages subclass ``LedgerError`` and ``NotifierError``.
Every message says what was expected, what was found and what to do; the facts
are kept as attributes too. Messages are masked: a known secret reads ``***``.
"""

from __future__ import annotations

from .masking import MASKER

__all__ = [
    "StateLedgerError",
    "FlowDefinitionError",
    "CycleError",
    "FlowContextError",
    "ParameterError",
    "CommandInputError",
    "NotCallableError",
    "IllegalTransitionError",
    "SecretNotFoundError",
    "LedgerError",
    "NotifierError",
]


class StateLedgerError(Exception):
    """Root of every error stateledger raises on purpose.

    Its text arguments are masked (``statemachine.masking``): no message we
    raise quotes a known secret.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(MASKER.mask(a) if type(a) is str else a for a in args))


class FlowDefinitionError(StateLedgerError, ValueError):
    """A flow or a task is defined in a way that cannot run."""


class CycleError(FlowDefinitionError):
    """The flow's dependencies form a cycle; ``tasks`` lists the tasks in it."""

    def __init__(self, message: str, tasks: list = ()) -> None:  # type: ignore[assignment]
        super().__init__(message)
        self.tasks = list(tasks)


class FlowContextError(FlowDefinitionError):
    """A task was called (the functional API) outside ``with Flow(...):``."""


class ParameterError(StateLedgerError, ValueError):
    """``flow.run(parameters=...)`` names an unknown parameter or misses a required one."""


class CommandInputError(StateLedgerError, ValueError):
    """Bad command-line input: a flow file, a ``--param``, a ``--handler``."""


class NotCallableError(StateLedgerError, TypeError):
    """A task, state handler, callback or listener is not callable."""


class IllegalTransitionError(StateLedgerError):
    """The engine proposed a move that the legal state graph refuses."""

    def __init__(self, message: str, old_state: object = None, new_state: object = None) -> None:
        super().__init__(message)
        self.old_state = old_state
        self.new_state = new_state


class SecretNotFoundError(StateLedgerError, KeyError):
    """A secret was not found; ``name`` and ``looked_in`` say where we looked."""

    def __init__(self, message: str, name: str = "", looked_in: tuple = ()) -> None:  # type: ignore[assignment]
        super().__init__(message)
        self.name = name
        self.looked_in = tuple(looked_in)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class LedgerError(StateLedgerError):
    """The ledger cannot be opened, read or written; ``path`` names the file."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class NotifierError(StateLedgerError):
    """A notification could not be delivered."""
