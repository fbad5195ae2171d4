"""The errors stateledger raises, under one root.

Every error class of every package is drawn here (the module that defines it
in brackets when it is not this one)::

    StateLedgerError
    ├── ArgumentError (ValueError, TypeError)  a bad argument to a public function
    │   ├── ParameterError                     an unknown or missing flow parameter
    │   ├── NotCallableError                   a task, handler, callback or listener that is not callable
    │   ├── CommandInputError                  bad CLI input: a flow file, a --param, a --handler
    │   ├── FilterError                        a filter that cannot match events [statemachine.filters]
    │   └── NotifierConfigError                a notifier configured wrongly, also a NotifierError
    │                                          [subscribers.notifiers]
    ├── FlowDefinitionError (ValueError)       a flow or task that cannot run as written
    │   ├── CycleError                         the dependencies form a cycle
    │   ├── FlowContextError                   a task called outside ``with Flow(...)``
    │   └── OptionTypeError (TypeError)        a task option of the wrong type (Prefect 1 raises TypeError)
    ├── RunInsideFlowError (RuntimeError)      ``flow.run()`` called inside its own ``with Flow(...)``
    ├── TaskTimeoutSignal (TimeoutError)       a task ran past its ``timeout`` (``TimedOut.result``)
    ├── IllegalTransitionError                 a move the graph refuses: the engine's (a bug), or a
    │                                          mark the manual edges do not allow
    ├── RestartError                           a run that cannot be restarted (unfinished, another flow)
    ├── SecretNotFoundError (KeyError)         a secret missing from every place we looked
    ├── SecretsFileError                       the secrets file is unsafe or unreadable [statemachine.secrets]
    ├── LedgerError                            the ledger cannot be opened, read or written
    │   ├── NotALedgerError                    not SQLite, or SQLite but not a ledger [eventstore.errors]
    │   ├── SchemaVersionError                 written by a newer schema version [eventstore.errors]
    │   ├── LedgerWriteError                   an append (or creating the file) failed [eventstore.errors]
    │   │   └── LedgerLocationError            the folder is missing or cannot be written [eventstore.errors]
    │   ├── LedgerConnectionError              the PostgreSQL server is unreachable or refuses the login
    │   │                                      [eventstore.errors]
    │   ├── RunNotFoundError (KeyError)        no event of that run id [eventstore.errors]
    │   ├── ImportLineError (ValueError)       a line of an export cannot be imported [eventstore.errors]
    │   └── RunExistsError                     a new run given the id of an existing one [eventstore.errors]
    ├── CheckpointError                        a checkpoint or key file that cannot be read or used
    │                                          [eventstore.errors]
    ├── ExecutorError                          an executor cannot start (e.g. dask is not installed)
    │   ├── ExecutorSpecError                  an executor spec or option that makes no sense (also an ArgumentError)
    │   └── SerialisationError (TypeError)     a task's function or result cannot travel to/from Dask
    ├── NotifierError                          a notification could not be delivered
    │   ├── NotifierConfigError                (see ArgumentError) [subscribers.notifiers]
    │   └── DeliveryError                      the server refused or failed [subscribers.notifiers]
    │       └── DeliveryTimeout                no answer in time [subscribers.notifiers]
    ├── SubscriptionConflictError (ValueError) a durable subscription name reused with another
    │                                          filter [subscribers.durable]
    ├── SubscriptionBusyError                  another consumer holds the subscription's name
    │                                          [subscribers.durable]
    └── SubscriptionStoreError (TypeError)     a store that cannot keep a durable cursor
                                               [subscribers.durable]

Task signals (``FAIL``, ``SKIP``, ... in ``statemachine.signals``) are not
errors: they are how a task body chooses its state.

A bad argument raises ``ArgumentError`` (or the subclass above naming what
was wrong): it is also a ``ValueError`` and a ``TypeError``, so code catching
Python's usual "bad argument" errors keeps working. Every message says what
was expected, what was found and what to do; the facts are kept as attributes
too (``argument`` and ``value`` for an ``ArgumentError``).
Messages are masked: a known secret reads ``***``.
"""

from __future__ import annotations

from .masking import MASKER

__all__ = [
    "StateLedgerError",
    "ArgumentError",
    "FlowDefinitionError",
    "CycleError",
    "FlowContextError",
    "OptionTypeError",
    "ParameterError",
    "RunInsideFlowError",
    "CommandInputError",
    "NotCallableError",
    "IllegalTransitionError",
    "RestartError",
    "SecretNotFoundError",
    "LedgerError",
    "NotifierError",
    "ExecutorError",
    "ExecutorSpecError",
    "SerialisationError",
    "TaskTimeoutSignal",
]


class StateLedgerError(Exception):
    """Root of every error stateledger raises on purpose.

    Its text arguments are masked (``statemachine.masking``): no message we
    raise quotes a known secret.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(MASKER.mask(a) if type(a) is str else a for a in args))


class ArgumentError(StateLedgerError, ValueError, TypeError):
    """A bad argument to a public function; ``argument`` names it, ``value`` is what was given."""

    def __init__(self, message: str, argument: str = "", value: object = None) -> None:
        super().__init__(message)
        self.argument = argument
        self.value = value


class FlowDefinitionError(StateLedgerError, ValueError):
    """A flow or a task is defined in a way that cannot run."""


class CycleError(FlowDefinitionError):
    """The flow's dependencies form a cycle; ``tasks`` lists the tasks in it."""

    def __init__(self, message: str, tasks: list = ()) -> None:  # type: ignore[assignment]
        super().__init__(message)
        self.tasks = list(tasks)


class FlowContextError(FlowDefinitionError):
    """A task was called (the functional API) outside ``with Flow(...):``."""


class OptionTypeError(FlowDefinitionError, TypeError):
    """A task or flow option of the wrong type: a ``TypeError``, as Prefect 1 raises it."""


class RunInsideFlowError(StateLedgerError, RuntimeError):
    """``flow.run()`` was called inside the flow's own ``with Flow(...)`` block (Prefect 1 refuses it too)."""


class ParameterError(ArgumentError):
    """``flow.run(parameters=...)`` names an unknown parameter or misses a required one."""


class CommandInputError(ArgumentError):
    """Bad command-line input: a flow file, a ``--param``, a ``--handler``."""


class NotCallableError(ArgumentError):
    """A task, state handler, callback or listener is not callable."""


class IllegalTransitionError(StateLedgerError):
    """The engine proposed a move that the legal state graph refuses."""

    def __init__(self, message: str, old_state: object = None, new_state: object = None) -> None:
        super().__init__(message)
        self.old_state = old_state
        self.new_state = new_state


class RestartError(StateLedgerError):
    """``flow.run(restart=RUN_ID)`` cannot continue that run; ``run_id`` names it."""

    def __init__(self, message: str, run_id: str = "") -> None:
        super().__init__(message)
        self.run_id = run_id


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


class ExecutorError(StateLedgerError):
    """An executor cannot run tasks: a missing extra, an unreachable cluster."""


class ExecutorSpecError(ExecutorError, ArgumentError):
    """An executor spec (``threads:8``, ``dask:tcp://host:8786``) or option is not valid."""


class SerialisationError(ExecutorError, TypeError):
    """A task's function, arguments or result cannot travel to or from a Dask worker."""


class TaskTimeoutSignal(StateLedgerError, TimeoutError):
    """A task body ran longer than its ``timeout``: the ``result`` of its ``TimedOut`` state.

    Named and worded as Prefect 1's (``TaskTimeoutSignal("Execution timed out.")``).
    """

    def __init__(self, message: str = "Execution timed out.") -> None:
        super().__init__(message)
