"""Shared helpers for running the engine's tests on every executor.

``executor`` is parametrized over LocalExecutor, ThreadExecutor and a
DaskExecutor on one in-process LocalCluster shared by the whole session (it
starts once, in about a second). Dask pickles task functions even for
in-process workers, so a test whose task body appends to a list of the test
uses ``SharedList``: it travels by reference within this process.
"""

from __future__ import annotations

import logging

import pytest

from statemachine.executors import DaskExecutor, LocalExecutor, ThreadExecutor

EXECUTORS = ["local", "threads", "dask"]

_shared: dict[int, "SharedList"] = {}


def _lookup(ident: int) -> "SharedList":
    return _shared[ident]


class SharedList(list):
    """A list that stays the same object when a Dask worker in this process unpickles it."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        _shared[id(self)] = self

    def __reduce__(self):
        return _lookup, (id(self),)


@pytest.fixture(scope="session")
def dask_cluster():
    """One in-process Dask cluster (2 workers x 2 threads) for every test that needs one."""
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=False, dashboard_address=None, silence_logs=logging.ERROR,
        scheduler_kwargs={"dashboard_address": ":0"})  # its HTTP server on a free port, not 8787
    yield cluster
    cluster.close()


def make_executor(kind: str, request) -> object:
    if kind == "local":
        return LocalExecutor()
    if kind == "threads":
        return ThreadExecutor(max_workers=4)
    return DaskExecutor(address=request.getfixturevalue("dask_cluster").scheduler_address)


@pytest.fixture(params=EXECUTORS)
def executor(request):
    """Each executor in turn; the Dask one on the session's shared cluster."""
    return make_executor(request.param, request)
