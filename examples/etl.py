"""A nightly ETL: extract orders, clean them, load them into the warehouse.

The warehouse is busy on the first attempt, so ``load`` fails once, waits and
retries, then succeeds. A state handler labels every retry with the time it
will run again, so the ledger (and ``stateledger show``) tells why it waited.

    stateledger run examples/etl.py
    stateledger run examples/etl.py --param day=2024-06-02
"""

from __future__ import annotations

from statemachine import Flow, Parameter, task
from statemachine.states import Retrying, State

ORDERS = {
    "2024-06-01": [
        {"id": 1, "sku": "tea", "qty": 2, "price": 4.5},
        {"id": 2, "sku": "mug", "qty": 1, "price": 9.0},
        {"id": 3, "sku": "tea", "qty": 0, "price": 4.5},
    ],
}
_attempts = {"load": 0}


def explain_retry(task, old_state: State, new_state: State) -> State:
    """Say when a retrying task will run again (the message the ledger keeps)."""
    if isinstance(new_state, Retrying):
        return Retrying(
            f"{task.name} will retry at {new_state.start_time:%H:%M:%S} UTC ({new_state.result})",
            result=new_state.result,
            start_time=new_state.start_time,
            run_count=new_state.run_count,
        )
    return new_state


@task
def extract(day: str) -> list[dict]:
    return ORDERS.get(day, [])


@task
def transform(orders: list[dict]) -> list[dict]:
    return [dict(o, total=o["qty"] * o["price"]) for o in orders if o["qty"] > 0]


@task(max_retries=2, retry_delay=0.2, state_handlers=[explain_retry])
def load(rows: list[dict]) -> int:
    _attempts["load"] += 1
    if _attempts["load"] == 1:
        raise ConnectionError("warehouse busy, try again shortly")
    return len(rows)


with Flow("etl") as flow:
    day = Parameter("day", default="2024-06-01")
    load(transform(extract(day)))
