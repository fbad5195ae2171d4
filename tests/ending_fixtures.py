"""Flows run in child processes and stopped at random moments (SIGINT, SIGTERM, SIGKILL).

``TRIAL_FLOW`` is a flow file: 48 tasks in chains of three, a quarter of them
sleeping 250 ms, the rest only committing, so a signal lands in task bodies
and in commits alike. A task handler prints ``started`` when the first task
starts (the flow's Running is committed by then): the parent waits for that
line before it picks its moment.
``start_child`` runs it through the library (``flow.run``) or the CLI
(``stateledger run``), on the local or the thread executor.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

TASKS = 48

TRIAL_FLOW = f'''
import time
from statemachine import Flow, task


_told = []


def announce(obj, old, new):
    if new.is_running() and not _told:  # the first task starts: the flow's Running is committed
        _told.append(True)
        print("started", flush=True)


@task(state_handlers=[announce])
def step(i, prev=None):
    if i % 4 == 0:
        time.sleep(0.25)
    return i


with Flow("trial") as flow:
    prev = None
    for i in range({TASKS}):
        prev = step(i) if i % 3 == 0 else step(i, prev)
'''

LIBRARY_RUNNER = '''
import sys
sys.path.insert(0, sys.argv[4])
from trialflow import flow
from eventstore import EventStore
from statemachine.executors import ThreadExecutor

store = EventStore(sys.argv[1])
executor = ThreadExecutor(max_workers=3) if sys.argv[3] == "threads" else None
flow.run(store=store, run_id=sys.argv[2], executor=executor)
'''


def write_flow(folder: Path, source: str = TRIAL_FLOW) -> Path:
    path = folder / "trialflow.py"
    path.write_text(source)
    return path


def start_child(folder: Path, db: Path, run_id: str, *, via: str = "library", executor: str = "local",
                flow_file: Path | None = None) -> subprocess.Popen:
    """A child running the trial flow as ``run_id``; its stdout is a pipe of text lines."""
    flow_file = flow_file or folder / "trialflow.py"
    if via == "library":
        args = [sys.executable, "-c", LIBRARY_RUNNER, str(db), run_id, executor, str(flow_file.parent)]
    else:
        args = [sys.executable, "-m", "eventstore.cli", "run", str(flow_file), "--run-id", run_id, "--db", str(db)]
        if executor == "threads":
            args += ["--executor", "threads:3"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 60.0) -> None:
    """Read the child's stdout until a line equal to ``text`` (fails if the child ends first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the child ended before printing {text!r}: {proc.stderr.read()}")
        if line.strip() == text:
            return
    raise AssertionError(f"no {text!r} from the child within {timeout} s")
