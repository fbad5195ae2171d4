"""A nightly load that fails while the warehouse is closed: try `stateledger restart` on it.

    stateledger run examples/warehouse.py --run-id nightly-1        # load fails
    WAREHOUSE=open stateledger restart nightly-1 examples/warehouse.py

The restart runs only `load` again: `extract` and `transform` succeeded, and
their recorded results feed `load`.
"""

import os

from statemachine import Flow, task


@task
def extract():
    print("extract: reading 3 rows from the source")  # a side effect: shown once, not on the restart
    return [1, 2, 3]


@task
def transform(rows):
    return [row * 10 for row in rows]


@task
def load(rows):
    if os.environ.get("WAREHOUSE") != "open":
        raise ConnectionError("warehouse closed for maintenance")
    return len(rows)


with Flow("nightly") as flow:
    load(transform(extract()))
