"""``stateledger restart`` and ``stateledger mark`` (and what shows them), as subprocesses on real ledgers."""

from __future__ import annotations

import json
import textwrap

import pytest

from cli_helpers import error_line, make_env, sl

NIGHTLY = """
    import os
    from statemachine import Flow, task

    def count(name):
        with open(name + ".count", "a") as f:
            f.write("x")

    @task
    def extract():
        count("extract")
        return [1, 2, 3]

    @task
    def load(rows):
        count("load")
        if not os.path.exists("fixed"):
            raise RuntimeError("warehouse offline")
        return len(rows)

    with Flow("nightly") as flow:
        load(extract())
"""


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "nightly.py").write_text(textwrap.dedent(NIGHTLY))
    env = make_env(tmp_path)
    failed = sl("run", "nightly.py", "--run-id", "nightly-1", env=env, cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    return tmp_path, env


def test_restart_reruns_the_failed_task_only_and_both_attempts_are_in_one_history(folder):
    path, env = folder
    (path / "fixed").write_text("")
    result = sl("restart", "nightly-1", "nightly.py", env=env, cwd=path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Restarting run nightly-1 of flow nightly (ledger {path / 'ledger.db'}; times UTC)"
    assert [line[14:] for line in lines[1:7]] == [
        "flow  nightly             Failed -> Scheduled()",
        "task  load-1              Failed -> Pending()",
        'flow  nightly             Scheduled -> Running("Running flow.")',
        'task  load-1 (attempt 2)  Pending -> Running("Starting task run.")',
        'task  load-1 (attempt 2)  Running -> Success("Task run succeeded.")',
        'flow  nightly             Running -> Success("All reference tasks succeeded.")',
    ]
    assert lines[-3:-1] == ['Run nightly-1: Success("All reference tasks succeeded.")', lines[-2]]
    assert result.stderr == "stateledger: restart of run nightly-1: 1 tasks done, 1 run again\n"
    assert (path / "extract.count").read_text() == "x" and (path / "load.count").read_text() == "xx"
    shown = sl("show", "nightly-1", env=env, cwd=path).stdout
    assert ", 12 events" in shown.splitlines()[1]
    assert sl("verify", "nightly-1", env=env, cwd=path).stdout.startswith("OK: 12 events verified (run nightly-1")
    again = sl("restart", "nightly-1", "nightly.py", "--executor", "threads:2", env=env, cwd=path)  # nothing reruns
    assert again.returncode == 0 and (path / "load.count").read_text() == "xx"


def test_restart_of_a_run_that_fails_again_exits_1_and_unknown_runs_exit_2(folder):
    path, env = folder
    still = sl("restart", "latest", "nightly.py", env=env, cwd=path)
    assert still.returncode == 1 and "Run nightly-1: Failed(" in still.stdout
    assert error_line(sl("restart", "nope", "nightly.py", env=env, cwd=path)).startswith(
        f"No run 'nope' in ledger {path / 'ledger.db'}. Recent runs: nightly-1.")
    (path / "other.py").write_text("from statemachine import Flow, task\nflow = Flow('other', [task(lambda: 1, name='one')])\n")
    assert error_line(sl("restart", "nightly-1", "other.py", env=env, cwd=path)) == (
        "Run nightly-1 is a run of flow 'nightly', not of 'other'; restart it with that flow "
        "(stateledger restart nightly-1 FILE:FLOW).")


def test_mark_records_who_and_why_and_audit_manual_lists_marks(folder):
    path, env = folder
    marked = sl("mark", "nightly-1", "load-1", "Success", "--reason", "loaded by hand", "--by", "alice",
                env=env, cwd=path)
    assert marked.returncode == 0, marked.stderr
    assert [line[14:] for line in marked.stdout.splitlines()] == [
        'task  load-1              Failed -> Success("Marked Success by alice: loaded by hand")  [marked by alice]',
        'flow  nightly             Failed -> Success("All reference tasks succeeded.")  [marked by alice]',
    ]
    audit = sl("audit", "--manual", env=env, cwd=path).stdout.splitlines()
    assert audit[0].split() == ["SEQ", "TIME", "(UTC)", "RUN", "KEY", "STATE", "BY", "REASON"]
    assert [row.split()[3:] for row in audit[1:]] == [
        ["nightly-1", "load-1", "Failed", "->", "Success", "alice", "loaded", "by", "hand"],
        ["nightly-1", "nightly", "Failed", "->", "Success", "alice", "loaded", "by", "hand"],
    ]
    records = json.loads(sl("audit", "--manual", "--json", env=env, cwd=path).stdout)
    assert [(r["key"], r["actor"], r["reason"]) for r in records] == [
        ("load-1", "alice", "loaded by hand"), ("nightly", "alice", "loaded by hand")]
    assert sl("runs", env=env, cwd=path).stdout.splitlines()[1].split()[2] == "Success"
    shown = sl("show", "nightly-1", env=env, cwd=path).stdout
    assert "^ marked by alice: loaded by hand" in shown
    assert sl("verify", env=env, cwd=path).returncode == 0


def test_an_illegal_mark_exits_2_and_writes_nothing(folder):
    path, env = folder
    before = (path / "ledger.db").read_bytes()
    refused = sl("mark", "nightly-1", "load-1", "Running", "--reason", "again", env=env, cwd=path)
    assert refused.returncode == 2
    assert error_line(refused) == (
        "Cannot mark task load-1 of run nightly-1 as Running: it is Failed, and a mark may only move a state to a "
        "finished one (Cached, Cancelled, Crashed, Failed, Skipped, Success, TimedOut, TriggerFailed, ValidationFailed), never back to "
        "Running or a pending state. Nothing was written (`stateledger graph --manual` draws the edges).")
    missing = sl("mark", "nightly-1", "load-1", "Success", env=env, cwd=path)
    assert missing.returncode == 2 and "Missing option '--reason'" in missing.stderr
    assert sl("audit", "--manual", env=env, cwd=path).stdout == "No manual marks match.\n"
    assert (path / "ledger.db").read_bytes() == before


def test_graph_manual_draws_the_mark_and_restart_edges():
    plain = sl("graph", env=make_env_none()).stdout
    manual = sl("graph", "--manual", env=make_env_none()).stdout
    assert "Failed --> Success : mark" not in plain and "Failed --> Success : mark" in manual
    assert "    Failed --> Pending : restart" in manual and "    Running --> Pending : restart" not in manual
    assert manual.startswith(plain.rstrip("\n"))
    dot = sl("graph", "--manual", "--format", "dot", env=make_env_none()).stdout
    assert '    Failed -> Success [style=dashed, label="mark"];' in dot


def make_env_none():
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("STATELEDGER")}
