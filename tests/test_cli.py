"""The ``stateledger`` command line, driven as a subprocess on real ledger files.

One module-scoped ledger holds a few runs (a success with a retry rewritten by
a handler, a failure, a flow with a side effect); most tests read it. Every
test asserts the exit code, and the exact error line where there is one.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from cli_helpers import ETL, error_line, failing_flow, make_env, sl

FLOWS = {
    "failing.py": failing_flow(),
    "sidefx.py": """
        from statemachine import Flow, Parameter, task

        @task
        def append_line(path):
            with open(path, "a") as f:
                f.write("ran\\n")
            return path

        with Flow("sidefx") as flow:
            append_line(Parameter("marker"))
    """,
    "params.py": """
        import json
        from statemachine import Flow, Parameter, task

        @task
        def record(out, n, flag, name, obj):
            with open(out, "w") as f:
                json.dump([n, flag, name, obj], f)

        with Flow("params") as flow:
            record(Parameter("out"), Parameter("n"), Parameter("flag"), Parameter("name"), Parameter("obj"))
    """,
    "two.py": """
        from statemachine import Flow, task

        @task
        def hello():
            return "hi"

        with Flow("first") as alpha:
            hello()
        with Flow("second") as beta:
            hello()
    """,
    "crash.py": """
        import os
        from statemachine import Flow, task

        @task
        def warm_up():
            return 1

        @task
        def die(x):
            os._exit(3)  # the process vanishes mid-run, like a kill -9

        with Flow("crash") as flow:
            die(warm_up())
    """,
    "noflow.py": "X = 1\n",
    "broken.py": "raise RuntimeError('no database configured')\n",
    "notify.py": """
        def alert(obj, old_state, new_state):
            print(f"ALERT {obj!r} {type(old_state).__name__} -> {type(new_state).__name__}")
            return new_state

        def boom(obj, old_state, new_state):
            raise RuntimeError("smtp down")

        LIMIT = 3
    """,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder with flow files and one ledger (the default, via STATELEDGER_DB) holding four runs."""
    folder = tmp_path_factory.mktemp("cli")
    for name, text in FLOWS.items():
        (folder / name).write_text(textwrap.dedent(text))
    env = make_env(folder)
    marker = folder / "marker.txt"
    runs = {
        "etl-1": sl("run", ETL, "--run-id", "etl-1", env=env),
        "report-1": sl("run", str(folder / "failing.py"), "--run-id", "report-1", env=env),
        "sidefx-1": sl("run", "sidefx.py", "--param", f"marker={marker}", "--run-id", "sidefx-1", env=env, cwd=folder),
    }
    return {"dir": folder, "env": env, "db": folder / "ledger.db", "marker": marker, "runs": runs}


# --- run -------------------------------------------------------------------------


def test_run_prints_each_transition_as_it_commits_and_a_summary(world):
    result = world["runs"]["etl-1"]
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Running flow etl as run etl-1 (ledger {world['db']}; times UTC)"
    assert lines[1].endswith('flow  etl                 Scheduled -> Running("Running flow.")')
    assert any('load-1              Running -> Failed("Error during execution of task: '
               "ConnectionError('warehouse busy, try again shortly')\")" in line for line in lines)
    retry = next(line for line in lines if "-> Retrying(" in line)
    assert '[rewritten by etl.explain_retry (proposed Retrying("Retrying Task (after attempt 1 of 3)"))]' in retry
    assert any('load-1 (attempt 2)  Running -> Success("Task run succeeded.")' in line for line in lines)
    assert lines[-3:] == [
        'Run etl-1: Success("All reference tasks succeeded.")',
        lines[-2],
        "  details: stateledger show etl-1",
    ]
    assert lines[-2].startswith("  tasks: 4 Success; took ")
    assert world["db"].exists()  # the default ledger: STATELEDGER_DB


def test_run_exits_1_when_the_flow_fails(world):
    result = world["runs"]["report-1"]
    assert result.returncode == 1
    assert 'publish-1           Running -> Failed("Error during execution of task: ValueError(\'printer on fire\')")' in result.stdout
    assert result.stdout.endswith(
        'Run report-1: Failed("Some reference tasks failed.")\n'
        "  tasks: 1 Failed, 1 Success; took " + result.stdout.split("took ")[1].split("\n")[0] + "\n"
        "  details: stateledger show report-1\n"
    )


def test_run_parses_params_as_json_when_valid_else_as_strings(world, tmp_path):
    out = tmp_path / "seen.json"
    result = sl(
        "run", str(world["dir"] / "params.py"), "--db", str(tmp_path / "p.db"), "--json",
        "--param", f"out={out}", "--param", "n=3", "--param", "flag=true", "--param", "name=hello world",
        "--param", 'obj={"a": [1, 2]}', env=world["env"],
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == [3, True, "hello world", {"a": [1, 2]}]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["kind"] == "flow" and records[0]["new_state"]["type"] == "Running"
    assert records[-1]["state"]["type"] == "Success" and records[-1]["tasks"] == {"Success": 6}


def test_run_picks_a_flow_by_variable_or_flow_name_when_a_file_holds_several(world, tmp_path):
    env, two = world["env"], str(world["dir"] / "two.py")
    db = ["--db", str(tmp_path / "two.db")]
    assert error_line(sl("run", two, *db, env=env)) == (
        f"{two} defines 2 flows; name the one to run: {two}:alpha, {two}:beta"
    )
    by_variable = sl("run", f"{two}:beta", *db, env=env)
    by_name = sl("run", f"{two}:first", *db, env=env)
    assert by_variable.returncode == 0 and "Running flow second as run second-" in by_variable.stdout
    assert by_name.returncode == 0 and "Running flow first as run first-" in by_name.stdout
    assert error_line(sl("run", f"{two}:third", *db, env=env)) == (
        f"{two} has no flow named 'third' (module variables holding a flow: alpha, beta)"
    )


def test_run_refuses_bad_flow_files_and_params_with_one_line(world, tmp_path):
    env, d = world["env"], world["dir"]
    db = ["--db", str(tmp_path / "bad.db")]
    assert error_line(sl("run", str(d / "missing.py"), *db, env=env)) == (
        f"Flow file {d / 'missing.py'} does not exist (expected a Python file, e.g. examples/etl.py)"
    )
    assert error_line(sl("run", str(d / "broken.py"), *db, env=env)) == (
        f"Flow file {d / 'broken.py'} failed to import: {d / 'broken.py'}:1: RuntimeError: no database configured "
        "(--traceback shows the whole traceback)"
    )
    assert error_line(sl("run", str(d / "noflow.py"), *db, env=env)) == (
        f"{d / 'noflow.py'} defines no flow: create one at module level, e.g. `with Flow(\"etl\") as flow: ...`"
    )
    assert error_line(sl("run", ETL, "--param", "day", *db, env=env)) == (
        "--param 'day' is not KEY=VALUE; write it like --param day=2024-06-01 or --param limit=10"
    )
    assert error_line(sl("run", ETL, "--param", "month=6", *db, env=env)) == (
        "Flow 'etl' has no parameter 'month'; its parameters are: day"
    )
    assert not (tmp_path / "bad.db").exists()  # refused before the ledger was opened: nothing created


def test_the_readme_commands_work_on_the_default_ledger_in_home(tmp_path):
    """No --db, no STATELEDGER_DB: run, show and verify use ~/.stateledger/ledger.db."""
    env = make_env(tmp_path)
    del env["STATELEDGER_DB"]
    ran = sl("run", ETL, env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    default = tmp_path / "home" / ".stateledger" / "ledger.db"
    assert ran.stdout.splitlines()[0].endswith(f"(ledger {default}; times UTC)")
    run_id = ran.stdout.splitlines()[-1].split()[-1]
    assert run_id.startswith("etl-")
    shown = sl("show", run_id, env=env, cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.startswith(f"Run {run_id}  flow etl  Success(")
    verified = sl("verify", env=env, cwd=tmp_path)
    assert verified.returncode == 0 and verified.stdout == f"OK: 13 events verified (all runs, ledger {default})\n"


# --- reading the ledger ------------------------------------------------------------


def test_a_run_whose_process_died_shows_as_unfinished(world, tmp_path):
    env, db = world["env"], ["--db", str(tmp_path / "crash.db")]
    died = sl("run", str(world["dir"] / "crash.py"), "--run-id", "crash-1", *db, env=env)
    assert died.returncode == 3 and 'die-1               Pending -> Running("Starting task run.")' in died.stdout
    listed = sl("runs", *db, env=env).stdout.splitlines()
    assert listed[1].split()[:3] == ["crash-1", "crash", "Running"] and listed[1].split()[-2:] == ["-", "4"]
    shown = sl("show", "crash-1", *db, env=env)
    assert shown.returncode == 0
    assert shown.stdout.splitlines()[:2] == [
        'Run crash-1  flow crash  Running("Running flow.")',
        f"started {shown.stdout.split('started ')[1].split(' UTC')[0]} UTC, unfinished, 4 events",
    ]
    assert shown.stdout.rstrip().endswith('#1  Pending -> Running("Starting task run.")')


def test_runs_lists_runs_newest_first_with_filters(world):
    env = world["env"]
    result = sl("runs", env=env)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout  # piped: a plain table, no colours
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["RUN", "ID", "FLOW", "STATE", "STARTED", "(UTC)", "TOOK", "EVENTS"]
    assert [line.split()[0] for line in lines[1:]] == ["sidefx-1", "report-1", "etl-1"]
    assert lines[3].split()[1:3] == ["etl", "Success"] and lines[3].split()[-1] == "13"
    failed = sl("runs", "--state", "Failed", env=env)
    assert [line.split()[0] for line in failed.stdout.splitlines()[1:]] == ["report-1"]
    as_json = json.loads(sl("runs", "--flow", "etl", "--json", env=env).stdout)
    assert [(r["run_id"], r["flow"], r["events"]) for r in as_json] == [("etl-1", "etl", 13)]
    assert sl("runs", "--since", "2999-01-01", env=env).stdout == "No runs match.\n"
    assert [line.split()[0] for line in sl("runs", "--until", "1h", env=env).stdout.splitlines()[1:]] == []
    assert len(sl("runs", "--limit", "2", "--since", "1h", env=env).stdout.splitlines()) == 3


def test_show_prints_each_task_with_times_durations_and_rewrites(world):
    result = sl("show", "etl-1", env=world["env"])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith('Run etl-1  flow etl  Success("All reference tasks succeeded.")\nstarted ')
    assert ", 13 events\n" in text
    blocks = text.split("\n\n")
    assert [b.splitlines()[0].split()[:2] for b in blocks[1:]] == [
        ["flow", "etl"], ["task", "day-1"], ["task", "extract-1"], ["task", "transform-1"], ["task", "load-1"],
    ]
    load = blocks[-1].splitlines()
    assert len(load) == 7  # header, 6 transitions, 1 rewrite marker
    assert load[1].split()[2:] == ["#1", "Pending", "->", 'Running("Starting', 'task', 'run.")']
    assert load[4].strip().startswith('^ rewritten by etl.explain_retry (proposed Retrying("Retrying Task')
    waited = load[5].split()[1]  # the retry waited retry_delay=0.2s before running again
    assert waited.startswith("+") and waited.endswith("ms") and int(waited[1:-2]) >= 200
    shown = json.loads(sl("show", "etl-1", "--json", env=world["env"]).stdout)
    assert [o["key"] for o in shown["objects"]] == ["etl", "day-1", "extract-1", "transform-1", "load-1"]
    assert shown["state"]["type"] == "Success"


def test_audit_filters_transitions_like_events(world):
    env = world["env"]
    rewritten = sl("audit", "--rewritten", env=env)
    assert rewritten.returncode == 0, rewritten.stderr
    rows = rewritten.stdout.splitlines()
    assert rows[0].split() == ["SEQ", "TIME", "(UTC)", "RUN", "KEY", "TRY", "TRANSITION"]
    assert len(rows) == 2 and rows[1].split()[3:7] == ["etl-1", "load-1", "1", "Failed"]
    assert rows[1].endswith("  [rewritten by etl.explain_retry]")
    flows = json.loads(sl("audit", "--kind", "flow", "--run", "report-1", "--json", env=env).stdout)
    assert [(e["old_state"]["type"], e["new_state"]["type"]) for e in flows] == [("Scheduled", "Running"), ("Running", "Failed")]
    failed = json.loads(sl("audit", "--state", "Failed", "--key", "load-1", "--json", env=env).stdout)
    assert [(e["run_id"], e["attempt"]) for e in failed] == [("etl-1", 1)]
    named = json.loads(sl("audit", "--name", "fetch", "--json", env=env).stdout)
    assert {e["key"] for e in named} == {"fetch-1"} and len(named) == 2
    assert sl("audit", "--since", "2999-01-01", env=env).stdout == "No transitions match.\n"


def test_verify_passes_then_fails_with_the_problems_after_tampering(world, tmp_path):
    env = world["env"]
    ok = sl("verify", env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: ") and "verified (all runs" in ok.stdout
    assert sl("verify", "etl-1", env=env).returncode == 0
    tampered = tmp_path / "tampered.db"
    tampered.write_bytes(world["db"].read_bytes())
    with sqlite3.connect(tampered) as conn:
        table = _events_table(conn)
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        column = "new_state" if "new_state" in columns else next(c for c in columns if "message" in c or "state" in c)
        conn.execute(f"UPDATE {table} SET {column} = replace({column}, 'printer on fire', 'all fine') WHERE run_id = 'report-1'")
    conn.close()
    bad = sl("verify", "--db", str(tampered), env=env)
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert lines[0].startswith("FAILED: ") and f"ledger {tampered}" in lines[0]
    assert lines[1].startswith("  - ") and "report-1" in bad.stdout
    assert json.loads(sl("verify", "--json", "--db", str(tampered), env=env).stdout)["ok"] is False
    assert sl("verify", "etl-1", "--db", str(tampered), env=env).returncode == 0


def _events_table(conn: sqlite3.Connection) -> str:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return "events" if "events" in tables else next(t for t in tables if "event" in t)


def test_export_writes_jsonl_or_csv_for_one_run_or_all(world, tmp_path):
    env = world["env"]
    jsonl = sl("export", "--run", "report-1", env=env)
    assert jsonl.returncode == 0, jsonl.stderr
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(records) == 6 and {r["run_id"] for r in records} == {"report-1"}
    out = tmp_path / "all.csv"
    written = sl("export", "--format", "csv", "-o", str(out), env=env)
    assert written.returncode == 0 and written.stdout == ""
    header, *rows = out.read_text().splitlines()
    assert "run_id" in header.split(",") and len(rows) >= 13 + 6
    nowhere = tmp_path / "no" / "such" / "x.jsonl"
    assert error_line(sl("export", "-o", str(nowhere), env=env)) == f"No such file or directory: {nowhere}"


def test_replay_feeds_handlers_and_runs_no_task_code(world):
    env, folder = world["env"], world["dir"]
    assert world["runs"]["sidefx-1"].returncode == 0
    assert world["marker"].read_text() == "ran\n"
    result = sl("replay", "sidefx-1", "--handler", "notify:alert", env=env, cwd=folder)
    assert result.returncode == 0, result.stderr
    assert world["marker"].read_text() == "ran\n"  # the task body did not run again
    out = result.stdout
    assert "ALERT <Task: append_line> Running -> Success" in out
    assert "ALERT <Flow: name=sidefx> Running -> Success" in out
    assert "\n       notify.alert(<Task: append_line>) -> kept\n" in out
    assert out.endswith("Replayed 6 transitions of run sidefx-1: no task ran, nothing was written.\n")
    assert sum(line.startswith("#") for line in out.splitlines()) == len(
        json.loads(sl("audit", "--run", "sidefx-1", "--json", env=env).stdout)
    )
    failing = sl("replay", "sidefx-1", "--handler", "notify:boom", env=env, cwd=folder)
    assert failing.returncode == 1
    assert "notify.boom(<Task: append_line>) -> raised: RuntimeError('smtp down')" in failing.stdout
    assert failing.stdout.endswith("nothing was written; 6 handler call(s) raised.\n")


def test_replay_refuses_unknown_handlers(world):
    env, folder = world["env"], world["dir"]
    assert error_line(sl("replay", "sidefx-1", "--handler", "nosuchmod:alert", env=env, cwd=folder)) == (
        "--handler nosuchmod:alert: cannot import module 'nosuchmod' (No module named 'nosuchmod')"
    )
    assert error_line(sl("replay", "sidefx-1", "--handler", "notify:nothing", env=env, cwd=folder)) == (
        "--handler notify:nothing: module 'notify' has no attribute 'nothing'"
    )
    assert error_line(sl("replay", "sidefx-1", "--handler", "notify:LIMIT", env=env, cwd=folder)) == (
        "--handler notify:LIMIT: 'LIMIT' is a int, not a function"
    )
    assert error_line(sl("replay", "sidefx-1", "--handler", "notify", env=env, cwd=folder)) == (
        "--handler 'notify' is not module:function, e.g. --handler mynotify:alert"
    )


def test_unknown_run_ids_exit_2_with_one_line(world):
    env, db = world["env"], world["db"]
    expected = (f"No run 'nope' in ledger {db}. Recent runs: sidefx-1, report-1, etl-1. "
                "List them with store.runs() (or `stateledger runs`).")
    for args in (["show", "nope"], ["replay", "nope"], ["verify", "nope"], ["export", "--run", "nope"],
                 ["audit", "--run", "nope"]):
        result = sl(*args, env=env)
        assert result.returncode == 2, args
        assert error_line(result).startswith("No run 'nope'"), args
    assert error_line(sl("show", "nope", env=env)) == expected


def test_read_commands_never_modify_the_ledger(world):
    env, db, folder = world["env"], world["db"], world["dir"]
    before = db.read_bytes()
    for args in (["runs"], ["show", "etl-1"], ["audit"], ["verify"], ["export"], ["replay", "etl-1"],
                 ["runs", "--json"], ["follow", "--from-start", "--count", "1"]):
        assert sl(*args, env=env, cwd=folder).returncode == 0, args
    assert db.read_bytes() == before


def test_read_commands_refuse_a_missing_or_foreign_ledger_file(world, tmp_path):
    env = world["env"]
    missing = tmp_path / "missing.db"
    for args in (["runs"], ["show", "x"], ["audit"], ["verify"], ["export"], ["follow"]):
        line = error_line(sl(*args, "--db", str(missing), env=env))
        assert line == (
            f"No ledger at {missing}: the file does not exist. Pass the ledger with --db PATH "
            "(or set STATELEDGER_DB), or record a run first with: stateledger run FILE.py"
        )
    assert not missing.exists()
    foreign = tmp_path / "notes.txt"
    foreign.write_text("shopping list\n" * 100)
    line = error_line(sl("runs", "--db", str(foreign), env=env))
    assert str(foreign) in line
    assert foreign.read_text() == "shopping list\n" * 100
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.close()
    before = other.read_bytes()
    assert error_line(sl("show", "x", "--db", str(other), env=env)) == (
        f"{other} is not a ledger: it is a SQLite database with tables invoices. Point STATELEDGER_DB "
        "(or EventStore's path) at a ledger file or at a new file."
    )
    assert other.read_bytes() == before
    empty_env = dict(env, STATELEDGER_DB=str(tmp_path / "default.db"))
    assert error_line(sl("runs", env=empty_env)).startswith(f"No ledger at {tmp_path / 'default.db'}")


def test_usage_errors_exit_2_with_one_line(world):
    env = world["env"]
    assert error_line(sl("runs", "--state", "Weird", env=env)).startswith(
        "Invalid value for '--state': unknown state 'Weird'; choose from State, Pending,"
    )
    assert error_line(sl("runs", "--since", "yesterday", env=env)) == (
        "Invalid value for '--since': 'yesterday' is neither an ISO time (2024-06-01T09:00) "
        "nor an age (30m, 2h, 7d) (see: stateledger runs --help)"
    )
    assert error_line(sl("show", env=env)) == "Missing argument 'RUN_ID'. (see: stateledger show --help)"
    assert error_line(sl("frobnicate", env=env)) == "No such command 'frobnicate'. (see: stateledger --help)"


def test_follow_prints_transitions_other_processes_commit(world, tmp_path):
    env, folder = world["env"], world["dir"]
    db = tmp_path / "live.db"
    assert sl("run", "sidefx.py", "--db", str(db), "--param", f"marker={tmp_path / 'm'}", env=env, cwd=folder).returncode == 0
    follower = subprocess.Popen(
        [sys.executable, "-m", "eventstore.cli", "follow", "--db", str(db), "--kind", "flow", "--count", "2",
         "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert follower.stderr.readline().startswith(f"Following {db}")
        writer = sl("run", "sidefx.py", "--db", str(db), "--run-id", "live-2", "--param", f"marker={tmp_path / 'm'}",
                    env=env, cwd=folder)
        assert writer.returncode == 0
        out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 2  # only the new run's flow transitions: the earlier run was already there
    assert lines[0].split()[1:] == ["live-2", "flow", "sidefx", "Scheduled", "->", 'Running("Running', 'flow.")']
    assert lines[1].split()[1:5] == ["live-2", "flow", "sidefx", "Running"]


def test_follow_stops_cleanly_when_interrupted(world):
    follower = subprocess.Popen(
        [sys.executable, "-m", "eventstore.cli", "follow", "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=world["env"],
    )
    try:
        assert follower.stderr.readline().startswith(f"Following {world['db']}")
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0
    assert "Traceback" not in err and out == ""


# --- graph, help -------------------------------------------------------------------


def test_graph_prints_the_legal_state_graph(world):
    mermaid = sl("graph", env=world["env"])
    assert mermaid.returncode == 0
    assert mermaid.stdout.startswith("stateDiagram-v2\n")
    assert "    Running --> Success\n" in mermaid.stdout and "Success --> Running" not in mermaid.stdout
    dot = sl("graph", "--format", "dot", env=world["env"])
    assert dot.stdout.startswith("digraph states {\n") and "    Running -> Retrying;\n" in dot.stdout


def test_every_command_has_help_with_an_example(world):
    for command in ("run", "runs", "show", "replay", "audit", "verify", "export", "follow", "graph"):
        result = sl(command, "--help", env=world["env"])
        assert result.returncode == 0
        assert "Example:" in result.stdout, command
        assert ("--db PATH" in result.stdout) == (command != "graph"), command


def test_main_is_a_click_command_usable_in_process(tmp_path):
    """``eventstore.cli:main`` (the console script) also works with click's CliRunner."""
    from click.testing import CliRunner

    from eventstore.cli import main

    graph = CliRunner().invoke(main, ["graph"])
    assert graph.exit_code == 0 and graph.output.startswith("stateDiagram-v2\n")
    missing = CliRunner().invoke(main, ["verify", "--db", str(tmp_path / "x.db")])
    assert missing.exit_code == 2
    assert missing.stderr.startswith(f"stateledger: error: No ledger at {tmp_path / 'x.db'}: the file does not exist.")
