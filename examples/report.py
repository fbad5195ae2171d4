"""A flow that fails: the printer is on fire, so ``publish`` raises.

    stateledger run examples/report.py      # exits 1
"""

from __future__ import annotations

from statemachine import Flow, task


@task
def render() -> str:
    return "<h1>Sales</h1>"


@task
def publish(page: str) -> None:
    raise OSError("printer on fire")


with Flow("report") as flow:
    publish(render())
