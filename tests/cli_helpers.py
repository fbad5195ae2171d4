"""Helpers for tests that drive the ``stateledger`` command as a subprocess on real ledger files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ETL = str(ROOT / "examples" / "etl.py")


def failing_flow(message: str = "printer on fire") -> str:
    """The source of a flow file whose flow "report" fails: fetch (Success) -> publish raises ``message``."""
    return textwrap.dedent(f"""\
        from statemachine import Flow, task

        @task
        def fetch():
            return 1

        @task
        def publish(x):
            raise ValueError({message!r})

        with Flow("report") as flow:
            publish(fetch())
    """)


def sl(*args: str, env: dict, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eventstore.cli", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )


def make_env(folder: Path) -> dict:
    home = folder / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATELEDGER")}
    env.update(HOME=str(home), STATELEDGER_DB=str(folder / "ledger.db"), COLUMNS="200")
    return env


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a failed command printed on stderr (asserting it is one line, no traceback)."""
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stateledger: error: ")
    return lines[0].removeprefix("stateledger: error: ")
