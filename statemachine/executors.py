"""Executors: where task bodies run while the engine keeps every transition.

``LocalExecutor`` runs bodies one after another in the flow-run thread (the
default); ``ThreadExecutor`` runs independent tasks at once in a thread pool;
``DaskExecutor`` sends them to a Dask cluster (a ``LocalCluster`` it starts
itself, or the scheduler at ``address``). Whatever the executor, handlers,
the legality check, the ledger commit and the broadcast stay in the flow-run
process, in the engine's thread: an executor only runs ``task.run(**kwargs)``
and reports how it ended.

The engine's side of the contract is small: ``executor.start()`` gives a
``Pool`` for one flow run (below); ``done(outcome)`` is called once per
submitted body, from any thread, with an ``Outcome``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .errors import ExecutorError, ExecutorSpecError, SerialisationError

__all__ = [
    "Executor", "LocalExecutor", "ThreadExecutor", "DaskExecutor", "Outcome", "Pool", "executor_from_spec",
]

DASK_EXTRA_HINT = "install the extra: pip install 'stateledger[dask]'"


@dataclass(slots=True)
class Outcome:
    """How a task body ended: ``value``, or ``error`` (an exception), or ``timed_out``."""

    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False


Done = Callable[[Outcome], None]


class Pool(Protocol):
    """What the engine uses during one flow run."""

    #: How many bodies may be in flight at once; None: no limit (the pool queues them).
    slots: int | None
    #: True: the engine calls ``run(task, kwargs) -> Outcome`` in its own thread instead of ``submit``.
    inline: bool

    def submit(self, task: Any, key: str, kwargs: dict[str, Any], done: Done) -> Any:
        """Run ``task.run(**kwargs)``; call ``done(outcome)`` when it ends. Returns a handle for ``cancel``."""

    def cancel(self, handle: Any) -> None:
        """The body's timeout expired: stop it if the pool can; its outcome is ignored either way."""

    def close(self, abandon: bool = False) -> None:
        """Release the pool at the run's end; ``abandon``: do not wait for bodies still running."""


class Executor:
    """Base of the executors; ``start()`` returns the pool one flow run uses."""

    def start(self) -> Pool:
        """Start a pool for one flow run (a thread pool, a Dask client); the engine closes it."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# --- LocalExecutor ------------------------------------------------------------


class LocalExecutor(Executor):
    """Run task bodies one after another in the flow-run thread (the default)."""

    def start(self) -> Pool:
        return _LocalPool()


class _LocalPool:
    """Runs the body in the engine's thread; a ``timeout`` waits for it in a helper thread."""

    slots = 1
    inline = True

    def run(self, task: Any, kwargs: dict[str, Any]) -> Outcome:  # replaced below: one call less per task
        return call_with_timeout(task, kwargs)

    def submit(self, task: Any, key: str, kwargs: dict[str, Any], done: Done) -> None:
        done(call_with_timeout(task, kwargs))

    def cancel(self, handle: Any) -> None:
        pass

    def close(self, abandon: bool = False) -> None:
        pass


def call_with_timeout(task: Any, kwargs: dict[str, Any]) -> Outcome:
    """Run ``task.run(**kwargs)`` here, or in a thread when it has a ``timeout``."""
    if task.timeout is None:
        try:
            return Outcome(task.run(**kwargs))
        except Exception as exc:
            return Outcome(error=exc)
    outcome: list[Outcome] = []

    def body() -> None:
        try:
            outcome.append(Outcome(value=task.run(**kwargs)))
        except BaseException as exc:  # handed back to the engine's thread below
            outcome.append(Outcome(error=exc))

    worker = threading.Thread(target=body, name=f"stateledger-task-{task.name}", daemon=True)
    worker.start()
    worker.join(task.timeout)
    if worker.is_alive():  # the thread cannot be killed; it is left to finish on its own
        return Outcome(timed_out=True)
    return outcome[0]


_LocalPool.run = staticmethod(call_with_timeout)  # type: ignore[method-assign]


# --- ThreadExecutor -----------------------------------------------------------


class ThreadExecutor(Executor):
    """Run independent tasks at once in a pool of ``max_workers`` threads (one machine).

    Suits tasks that wait (I/O, subprocesses, remote calls); CPU-bound Python
    code is better sent to ``DaskExecutor`` with processes.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and (
            not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1
        ):
            raise ExecutorSpecError(f"ThreadExecutor(max_workers=...) must be an int >= 1, got {max_workers!r}")
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)

    def __repr__(self) -> str:
        return f"ThreadExecutor(max_workers={self.max_workers})"

    def start(self) -> Pool:
        return _ThreadPool(self.max_workers)


class _Job:
    """A body for the thread pool; ``cancelled`` before it starts means it never runs."""

    __slots__ = ("run", "done", "cancelled", "thread")

    def __init__(self, run: Callable[[], Outcome], done: Done) -> None:
        self.run, self.done, self.cancelled = run, done, False
        self.thread: threading.Thread | None = None  # the worker running it, once started


class _ThreadPool:
    """Daemon worker threads fed from a queue.

    Daemon threads, like LocalExecutor's timeout thread: a body that timed out
    and never returns cannot keep the process from exiting. A worker stuck in
    such a body is replaced, so the pool keeps its size.
    """

    def __init__(self, max_workers: int) -> None:
        self.slots = max_workers
        self.inline = False
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.abandoned: set[threading.Thread] = set()
        self.submitted = 0
        self.lock = threading.Lock()  # a job starts or is cancelled, never both

    def submit(self, task: Any, key: str, kwargs: dict[str, Any], done: Done) -> _Job:
        context = contextvars.copy_context()  # the body sees the run's context, as on LocalExecutor
        job = _Job(lambda: context.run(_call, task, kwargs), done)
        self.submitted += 1
        if len(self.threads) - len(self.abandoned) < min(self.slots, self.submitted):
            self._spawn()
        self.jobs.put(job)
        return job

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name=f"stateledger-task-{len(self.threads) + 1}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            with self.lock:
                if job.cancelled:
                    continue
                job.thread = threading.current_thread()
            job.done(job.run())

    def cancel(self, job: _Job) -> None:
        with self.lock:
            job.cancelled = True
            running = job.thread
        if running is not None:  # a running thread cannot be stopped: leave it, and keep the pool's size
            self.abandoned.add(running)
            self._spawn()

    def close(self, abandon: bool = False) -> None:
        """Stop the workers; wait for those still running a body unless ``abandon``."""
        for _ in self.threads:
            self.jobs.put(None)
        if not abandon:
            for thread in self.threads:
                if thread not in self.abandoned:
                    thread.join()


def _call(task: Any, kwargs: dict[str, Any]) -> Outcome:
    try:
        return Outcome(value=task.run(**kwargs))
    except BaseException as exc:  # handed back to the engine's thread
        return Outcome(error=exc)


# --- DaskExecutor -------------------------------------------------------------


class DaskExecutor(Executor):
    """Run task bodies on a Dask cluster: a ``LocalCluster`` when ``address`` is None.

    A cluster this executor started is closed when the run ends; one at
    ``address`` is left running. Functions, arguments and results travel with
    cloudpickle; a task whose function or result cannot be serialised fails
    with a message saying so. Needs the extra ``stateledger[dask]``.
    """

    def __init__(
        self,
        address: str | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if address is not None and (not isinstance(address, str) or not address):
            raise ExecutorSpecError(f"DaskExecutor(address=...) must be a scheduler address string, got {address!r}")
        if address is not None and cluster_kwargs:
            raise ExecutorSpecError(
                "DaskExecutor(cluster_kwargs=...) configures the LocalCluster it starts when no address "
                f"is given; with address={address!r} the cluster is already running. Drop one of the two."
            )
        self.address = address
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})

    def __repr__(self) -> str:
        return f"DaskExecutor(address={self.address!r})"

    def start(self) -> Pool:
        distributed = import_distributed()
        cluster = None
        if self.address is None:
            options = {"dashboard_address": None, "silence_logs": logging.ERROR, **self.cluster_kwargs}
            if options["dashboard_address"] is None:  # its HTTP server (health, metrics) takes a free port, not 8787
                options["scheduler_kwargs"] = {"dashboard_address": ":0", **options.get("scheduler_kwargs", {})}
            cluster = distributed.LocalCluster(**options)
        try:
            client = distributed.Client(
                self.address or cluster, **{"set_as_default": False, **self.client_kwargs}
            )
        except OSError as exc:
            if cluster is not None:
                cluster.close()
            raise ExecutorError(
                f"Could not connect to the Dask scheduler at {self.address} ({exc}); "
                "check the address and that the scheduler is running"
            ) from exc
        return _DaskPool(client, cluster)


def import_distributed() -> Any:
    """``distributed``, or an ``ExecutorError`` naming the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ExecutorError(f"DaskExecutor needs dask[distributed], which is not installed; {DASK_EXTRA_HINT}") from exc
    return distributed


class _DaskPool:
    """Submits bodies to the cluster; one collector thread fetches results in batches.

    A future's done-callback only queues it; the collector gathers every
    future finished meanwhile in one call (fetching results one by one costs
    a round trip to the event loop each).
    """

    slots = None  # the scheduler queues what its workers cannot run yet
    inline = False

    def __init__(self, client: Any, cluster: Any) -> None:
        self.client, self.cluster = client, cluster
        self.finished: queue.SimpleQueue = queue.SimpleQueue()  # (future, key, done), None to stop
        self.running: set[Any] = set()  # futures submitted and not done: cancelled when the run is abandoned
        self.running_lock = threading.Lock()  # done-callbacks run on the client's event loop thread
        self.collector = threading.Thread(target=self._collect, name="stateledger-dask-results", daemon=True)
        self.collector.start()

    def submit(self, task: Any, key: str, kwargs: dict[str, Any], done: Done) -> Any:
        import cloudpickle

        try:
            payload = cloudpickle.dumps((body_of(task), kwargs))
        except Exception as exc:
            done(Outcome(error=SerialisationError(
                f"Task {key} cannot be sent to the Dask cluster: its function or arguments cannot be "
                f"serialised ({exc!r}); a task on DaskExecutor must be picklable by cloudpickle"
            )))
            return None
        future = self.client.submit(run_pickled, payload, key=f"{key}-{os.urandom(16).hex()}", pure=False)
        with self.running_lock:
            self.running.add(future)

        def ended(f: Any) -> None:
            with self.running_lock:
                self.running.discard(f)
            self.finished.put((f, key, done))

        future.add_done_callback(ended)
        return future

    def _collect(self) -> None:
        while True:
            batch = [self.finished.get()]
            while True:
                try:
                    batch.append(self.finished.get_nowait())
                except queue.Empty:
                    break
            jobs = [job for job in batch if job is not None]
            ready = [job for job in jobs if job[0].status == "finished"]
            try:
                answers = self.client.gather([f for f, _, _ in ready]) if ready else []
            except Exception:  # one of them went away meanwhile: take them one by one below
                answers, ready = [], []
            for (_, key, done), answer in zip(ready, answers):
                done(unpickle_outcome(answer, key))
            for job in jobs:
                if job not in ready:
                    job[2](self._outcome_of(*job[:2]))
            if len(jobs) < len(batch):
                return

    def _outcome_of(self, future: Any, key: str) -> Outcome:
        """One future's outcome; whatever happens, the engine hears of it."""
        try:
            if future.status == "finished":
                return unpickle_outcome(future.result(), key)
            if future.status == "error":
                return Outcome(error=future.exception())
            # cancelled: by us after a timeout (then ignored), or by someone else
            return Outcome(error=ExecutorError(f"Task {key}'s future on the Dask cluster ended {future.status}"))
        except Exception as exc:
            return Outcome(error=exc)

    def cancel(self, handle: Any) -> None:
        if handle is not None:
            handle.cancel()

    def close(self, abandon: bool = False) -> None:
        """Stop collecting, close the client, and the cluster this executor started.

        ``abandon`` (an interrupted run): cancel every future still out and close
        the cluster's workers without waiting for the bodies they are running
        (a body in a thread cannot be stopped; it is left to end, or to die with
        the process), so the run returns at once rather than when they end.
        """
        if abandon:
            with self.running_lock:
                out = list(self.running)
            with contextlib.suppress(Exception):  # the scheduler may be gone already
                self.client.cancel(out, force=True)
        self.finished.put(None)
        self.collector.join()
        self.client.close()  # releases what is still running
        if self.cluster is not None:
            if abandon:
                self._drop_workers()
            self.cluster.close()

    def _drop_workers(self) -> None:
        """Stop our cluster's workers without waiting for the bodies they run.

        An in-process worker is closed without waiting for its threads (they are
        daemon threads); a worker process is given 1 s, then killed.
        """
        import distributed

        for worker in list(getattr(self.cluster, "workers", {}).values()):
            with contextlib.suppress(Exception):
                if isinstance(worker, distributed.Worker):
                    self.cluster.sync(worker.close, executor_wait=False, nanny=False, reason="run-abandoned")
                elif isinstance(worker, distributed.Nanny):
                    self.cluster.sync(worker.kill, timeout=1, reason="run-abandoned")


def body_of(task: Any) -> Callable[..., Any]:
    """What travels to a worker: the function, or ``run`` of a copy without handlers."""
    fn = getattr(task, "fn", None)
    if fn is not None:
        return fn
    return task.copy(state_handlers=[]).run


def run_pickled(payload: bytes) -> tuple[str, Any]:
    """On the worker: run the body; return ("value" | "error", pickled) or ("unpicklable", detail)."""
    import cloudpickle

    fn, kwargs = cloudpickle.loads(payload)
    try:
        kind, outcome = "value", fn(**kwargs)
    except Exception as exc:
        kind, outcome = "error", exc
    try:
        return kind, cloudpickle.dumps(outcome)
    except Exception as exc:
        return "unpicklable", f"its {'result' if kind == 'value' else 'exception'} {type(outcome).__name__} ({exc!r})"


def unpickle_outcome(answer: tuple[str, Any], key: str) -> Outcome:
    """The flow-run side of ``run_pickled``."""
    import cloudpickle

    kind, data = answer
    if kind == "unpicklable":
        return Outcome(error=SerialisationError(
            f"Task {key} ran on the Dask cluster but {data} cannot be serialised to come back; "
            "return data cloudpickle can serialise from tasks on DaskExecutor"
        ))
    try:
        value = cloudpickle.loads(data)
    except Exception as exc:
        return Outcome(error=SerialisationError(
            f"Task {key}'s {'result' if kind == 'value' else 'exception'} came back from the Dask cluster "
            f"but cannot be loaded here ({exc!r}); is the same code installed where the flow runs?"
        ))
    return Outcome(error=value) if kind == "error" else Outcome(value=value)


# --- from the command line ----------------------------------------------------


def executor_from_spec(spec: str) -> Executor:
    """``local``, ``threads``, ``threads:N``, ``dask`` or ``dask:ADDRESS`` → an executor."""
    text = (spec or "").strip()
    kind, _, arg = text.partition(":")
    if kind == "local" and not arg:
        return LocalExecutor()
    if kind == "threads":
        if not arg:
            return ThreadExecutor()
        if arg.isdigit() and int(arg) >= 1:
            return ThreadExecutor(max_workers=int(arg))
    if kind == "dask":
        return DaskExecutor(address=arg or None)
    raise ExecutorSpecError(
        f"Unknown executor {spec!r}; use local, threads, threads:N (N >= 1 threads), "
        "dask (a local cluster) or dask:tcp://HOST:PORT (a running scheduler)"
    )
