"""Untrusted text in terminal output: control characters in run ids, names and messages are escaped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore import EventStore
from statemachine import Flow, task
from eventstore.cli.format import printable

ROOT = Path(__file__).resolve().parent.parent
FORGED_RUN = "evil\nforged-run  etl  Success  2026-01-01 00:00:00\x1b[2J"
FORGED_NAME = "load\r\x1b[31mfake\u202e"


def cli(*args: str, db: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATELEDGER")}
    env.update(HOME=str(db.parent / "home"), STATELEDGER_DB=str(db), PYTHONPATH=str(ROOT), COLUMNS="200",
               PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "eventstore.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture
def forged_ledger(tmp_path):
    def fails():
        raise ValueError("line one\nforged line\x1b[0m")

    db = tmp_path / "ledger.db"
    flow = Flow("etl\x1b]0;title\x07", [task(fails, name=FORGED_NAME)])
    with EventStore(db) as store:
        flow.run(store=store, run_id=FORGED_RUN)
    return db


def test_printable_escapes_controls_and_keeps_ordinary_text():
    assert printable("plain text, é, 日本") == "plain text, é, 日本"
    assert printable("a\nb\tc\x1b[2J\u202e\ud800") == "a\\nb\\tc\\x1b[2J\\u202e\\ud800"


@pytest.mark.parametrize("command", [
    ("runs",), ("audit",), ("show", FORGED_RUN), ("follow", "--from-start", "--count", "3"),
    ("replay", FORGED_RUN),
])
def test_tables_and_lines_show_control_characters_escaped(forged_ledger, command):
    result = cli(*command, db=forged_ledger)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
    assert "forged-run" not in text or "evil\\nforged-run" in text
    for line in text.splitlines():  # no line starts with what a user's text forged
        assert not line.startswith(("forged", "etl  Success")), line


def test_runs_lists_the_forged_run_on_one_row(forged_ledger):
    lines = cli("runs", db=forged_ledger).stdout.splitlines()
    assert len(lines) == 2  # the header and one run
    assert lines[1].startswith("evil\\nforged-run  etl  Success  2026-01-01 00:00:00\\x1b[2J")


def test_run_prints_live_transitions_escaped(tmp_path):
    (tmp_path / "flow.py").write_text(
        "from statemachine import Flow, task\n"
        "def fails():\n    raise ValueError('one\\ntwo\\x1b[2J')\n"
        "flow = Flow('f', [task(fails, name='t\\nforged')])\n")
    result = cli("run", str(tmp_path / "flow.py"), "--run-id", "r\nforged", db=tmp_path / "ledger.db")
    assert result.returncode == 1
    assert "\x1b" not in result.stdout
    assert not any(line.startswith("forged") for line in result.stdout.splitlines())
    assert "r\\nforged" in result.stdout and "t\\nforged-1" in result.stdout
