"""The command line behaves: closed pipes, terminal widths, pure JSON, limits, run ids, read-only ledgers."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import stat
import struct
import subprocess
import sys
import termios
import textwrap

import pytest
from cli_helpers import error_line, failing_flow, make_env, sl

from eventstore import EventStore
from statemachine import Flow, task

MANY = """
    from statemachine import Flow, task

    @task
    def step(i):
        print(f"step {i} says hello")  # what tasks print must never break a run
        return i

    with Flow("many") as flow:
        for i in range(150):
            step(i)
"""

FAILING = failing_flow("printer on fire: the paper tray is jammed and the toner is empty")


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "many.py").write_text(textwrap.dedent(MANY))
    (tmp_path / "failing.py").write_text(textwrap.dedent(FAILING))
    return tmp_path, make_env(tmp_path)


def shell(command: str, env: dict, cwd) -> subprocess.CompletedProcess:
    """``command`` in bash, printing each pipeline member's exit status last (PIPESTATUS)."""
    return subprocess.run(["bash", "-c", command + '; echo "status ${PIPESTATUS[*]}"'], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


SL = f"{sys.executable} -m eventstore.cli"


def test_a_read_command_piped_into_head_ends_quietly_with_exit_0(folder):
    path, env = folder
    assert sl("run", "many.py", "--run-id", "many-1", env=env, cwd=path).returncode == 0
    result = shell(f"{SL} audit --limit 0 | head -1", env, path)
    assert result.stdout.splitlines()[0].split()[:2] == ["SEQ", "TIME"]
    assert result.stdout.splitlines()[-1] == "status 0 0"
    assert result.stderr == ""
    shown = shell(f"{SL} show many-1 | head -3", env, path)
    assert shown.stdout.splitlines()[-1] == "status 0 0" and shown.stderr == ""


def test_a_closed_pipe_never_stops_a_run_the_run_finishes_and_is_recorded(folder):
    path, env = folder
    result = shell(f"{SL} run many.py --run-id piped | head -1", env, path)
    assert result.stdout.splitlines() == [
        f"Running flow many as run piped (ledger {path / 'ledger.db'}; times UTC)", "status 0 0"]
    assert result.stderr == ""
    with EventStore(path / "ledger.db") as store:
        run = store.run("piped")
        assert (run.state, run.events) == ("Success", 302)
        assert all(s.is_successful() for s in store.rebuild("piped").tasks.values())


def test_run_json_is_pure_json_and_what_tasks_print_goes_to_stderr(folder):
    path, env = folder
    result = sl("run", "many.py", "--json", env=env, cwd=path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 303 and records[-1]["state"]["type"] == "Success"
    assert "step 7 says hello" in result.stderr and "hello" not in result.stdout


def filled_ledger(path, runs=22):
    """``runs`` runs of a small flow written in this process (run ids etl-a00 ... newest last)."""
    @task
    def one():
        return 1

    flow = Flow("etl", [one])
    with EventStore(path) as store:
        for i in range(runs):
            flow.run(store=store, run_id=f"etl-a{i:02d}")


def test_runs_and_audit_show_the_newest_by_default_and_say_how_many_more(tmp_path):
    env = make_env(tmp_path)
    filled_ledger(tmp_path / "ledger.db")
    runs = sl("runs", env=env)
    assert runs.returncode == 0
    assert [line.split()[0] for line in runs.stdout.splitlines()[1:]] == [f"etl-a{i:02d}" for i in range(21, 1, -1)]
    assert runs.stderr == "… 2 more runs; use --limit N to see more (--limit 0: all)\n"
    assert len(sl("runs", "--limit", "0", env=env).stdout.splitlines()) == 23
    audit = sl("audit", env=env)
    seqs = [int(line.split()[0]) for line in audit.stdout.splitlines()[1:]]
    assert seqs == list(range(39, 89))  # the newest 50 of 88, oldest first
    assert audit.stderr == "… 38 more transitions; use --limit N to see more (--limit 0: all)\n"
    newest = json.loads(sl("audit", "--limit", "2", "--json", env=env).stdout)
    assert [e["seq"] for e in newest] == [87, 88]
    one_run = sl("audit", "--run", "etl-a03", "--limit", "1", env=env).stdout.splitlines()
    assert one_run[1].split()[0] == "16" and one_run[1].endswith('Running -> Success("All reference tasks succeeded.")')


def test_run_ids_may_be_prefixes_or_latest_and_an_ambiguous_prefix_is_refused(tmp_path):
    env = make_env(tmp_path)
    filled_ledger(tmp_path / "ledger.db", runs=12)
    assert sl("show", "latest", env=env).stdout.startswith("Run etl-a11  flow etl")
    assert sl("show", "etl-a05", env=env).stdout.startswith("Run etl-a05  flow etl")
    assert sl("verify", "etl-a1", env=env).returncode == 2
    refused = error_line(sl("show", "etl-a1", env=env))
    assert refused == "'etl-a1' is the start of 2 run ids (etl-a11, etl-a10); type more of it"
    assert sl("export", "--run", "etl-a07", env=env).stdout.count('"run_id":"etl-a07"') == 4
    assert error_line(sl("show", "zzz", env=env)).startswith(f"No run 'zzz' in ledger {tmp_path / 'ledger.db'}.")


def test_show_state_keeps_the_tasks_that_ended_so(folder):
    path, env = folder
    assert sl("run", "failing.py", "--run-id", "report-1", env=env, cwd=path).returncode == 1
    shown = sl("show", "report-1", "--state", "Failed", env=env, cwd=path).stdout
    blocks = shown.split("\n\n")
    assert [b.splitlines()[0].split()[:2] for b in blocks[1:]] == [["flow", "report"], ["task", "publish-1"]]
    none = sl("show", "report-1", "--state", "Skipped", env=env, cwd=path).stdout
    assert none.endswith("\n\nNo task or flow of this run ends in a state --state names.\n")


def run_in_terminal(args: list[str], env: dict, cwd, columns: int = 80) -> tuple[int, str, str]:
    """Run stateledger with stdout on a pseudo-terminal ``columns`` wide; return (exit, stdout, stderr)."""
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    env["NO_COLOR"] = "1"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "eventstore.cli", *args], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.PIPE, env=env, cwd=cwd)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    return proc.wait(timeout=60), out.decode().replace("\r\n", "\n"), err


@pytest.mark.parametrize("columns", [80, 100])
def test_tables_fit_the_terminal_and_keep_the_error_visible(folder, columns):
    path, env = folder
    sl("run", "failing.py", "--run-id", "report-20240601T090000-a1b2c3", env=env, cwd=path)
    code, out, err = run_in_terminal(["audit", "--state", "Failed"], env, path, columns)
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert lines[0].split()[:3] == ["SEQ", "TIME", "(UTC)"]
    publish = next(line for line in lines if "publish-1" in line)
    assert 'Failed("ValueError(' in publish and "…" in publish  # the state and the error's type
    assert "empty')\")" in publish  # and the end of its message
    code, out, _ = run_in_terminal(["show", "latest"], env, path, columns)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= columns
    assert "toner is empty" in out
    code, out, _ = run_in_terminal(["runs"], env, path, columns)
    assert code == 0 and max(len(line) for line in out.splitlines()) <= columns


def test_piped_tables_are_never_cut(folder):
    path, env = folder
    sl("run", "failing.py", "--run-id", "r", env=env, cwd=path)
    out = sl("audit", "--state", "Failed", env={**env, "COLUMNS": "80"}, cwd=path).stdout
    assert "Error during execution of task: ValueError('printer on fire: the paper tray is jammed" in out


def writable_again(*paths):
    for p in paths:
        os.chmod(p, stat.S_IRWXU if os.path.isdir(p) else stat.S_IRUSR | stat.S_IWUSR)


READ_COMMANDS = [
    ["runs"], ["show", "report-1"], ["audit"], ["verify"], ["export", "--run", "report-1"],
    ["replay", "report-1"], ["report", "report-1", "-o", "-"], ["show", "latest", "--json"],
]


def test_every_read_command_reads_a_read_only_ledger_and_changes_nothing(folder, tmp_path_factory):
    path, env = folder
    assert sl("run", "failing.py", "--run-id", "report-1", env=env, cwd=path).returncode == 1
    archive = tmp_path_factory.mktemp("archive")
    shutil.copy(path / "ledger.db", archive / "ledger.db")
    os.chmod(archive / "ledger.db", stat.S_IRUSR)
    os.chmod(archive, stat.S_IRUSR | stat.S_IXUSR)
    try:
        before = (archive / "ledger.db").read_bytes()
        for command in READ_COMMANDS:
            result = sl(*command, "--db", str(archive / "ledger.db"), env=env)
            assert result.returncode == 0, (command, result.stderr)
            assert "report-1" in result.stdout or command[0] in ("verify",), command
        assert sorted(os.listdir(archive)) == ["ledger.db"]  # no -wal, no -shm left beside it
        assert (archive / "ledger.db").read_bytes() == before
        refused = sl("mark", "report-1", "publish-1", "Success", "--reason", "x", "--db", str(archive / "ledger.db"),
                     env=env)
        assert refused.returncode == 2 and (archive / "ledger.db").read_bytes() == before
    finally:
        writable_again(archive, archive / "ledger.db")


def test_an_archived_copy_without_its_wal_is_read_without_creating_one(folder, tmp_path_factory):
    path, env = folder
    sl("run", "failing.py", "--run-id", "report-1", env=env, cwd=path)
    archive = tmp_path_factory.mktemp("copy")
    shutil.copy(path / "ledger.db", archive / "ledger.db")
    before = (archive / "ledger.db").read_bytes()
    for command in READ_COMMANDS:
        assert sl(*command, "--db", str(archive / "ledger.db"), env=env).returncode == 0, command
    assert sorted(os.listdir(archive)) == ["ledger.db"] and (archive / "ledger.db").read_bytes() == before


def test_a_version_1_ledger_is_readable_by_the_cli_and_left_as_it_was(folder):
    path, env = folder
    sl("run", "failing.py", "--run-id", "report-1", env=env, cwd=path)
    from trust_fixtures import downgrade_to_schema_1

    downgrade_to_schema_1(path / "ledger.db")  # what a version-1 ledger is: no reason column, no trust tables
    before = (path / "ledger.db").read_bytes()
    for command in READ_COMMANDS:
        assert sl(*command, env=env, cwd=path).returncode == 0, command
    assert (path / "ledger.db").read_bytes() == before


def test_an_empty_db_is_refused(folder):
    path, env = folder
    assert error_line(sl("runs", "--db", "", env=env, cwd=path)) == (
        "Invalid value for '--db': an empty path names no ledger; give a file (--db ledger.db), or leave --db "
        "out for $STATELEDGER_DB / ~/.stateledger/ledger.db (see: stateledger runs --help)")
    assert error_line(sl("run", "failing.py", "--db", " ", env=env, cwd=path)).startswith(
        "Invalid value for '--db': an empty path names no ledger;")


def _first_follow_note(path, env, *args):
    """The first line ``stateledger follow *args`` prints on stderr, then the follower is stopped."""
    proc = subprocess.Popen([sys.executable, "-m", "eventstore.cli", "follow", *args], env=env, cwd=path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        return proc.stderr.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_follow_of_an_unknown_run_says_so(folder):
    path, env = folder
    sl("run", "failing.py", "--run-id", "report-1", env=env, cwd=path)
    first = _first_follow_note(path, env, "--run", "nope")
    assert first == (f"stateledger: note: no run 'nope' in ledger {path / 'ledger.db'} (recent runs: report-1); "
                     "waiting for it to start. Check the id, or press Ctrl-C to stop.\n")


def test_a_flow_file_that_fails_to_import_names_its_line_and_traceback_shows_all(folder):
    path, env = folder
    (path / "broken.py").write_text("import os\n\n\ndef setup():\n    raise KeyError('DATABASE_URL')\n\n\nsetup()\n")
    line = error_line(sl("run", "broken.py", env=env, cwd=path))
    assert line == ("Flow file broken.py failed to import: broken.py:5: KeyError: 'DATABASE_URL' "
                    "(--traceback shows the whole traceback)")
    full = sl("run", "broken.py", "--traceback", env=env, cwd=path)
    assert full.returncode == 2
    assert full.stderr.startswith("Traceback (most recent call last):\n")
    assert 'broken.py", line 5, in setup' in full.stderr
    assert full.stderr.endswith(f"stateledger: error: {line}\n")
    (path / "syntax.py").write_text("x = (\n")
    assert error_line(sl("run", "syntax.py", env=env, cwd=path)).startswith(
        "Flow file syntax.py failed to import: syntax.py:1: SyntaxError: ")


def test_shell_completion_completes_run_ids(tmp_path):
    env = make_env(tmp_path)
    filled_ledger(tmp_path / "ledger.db", runs=3)
    env.update(_STATELEDGER_COMPLETE="bash_complete", COMP_WORDS="stateledger show etl-a0", COMP_CWORD="2")
    result = subprocess.run([sys.executable, "-m", "eventstore.cli"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.splitlines() == ["plain,etl-a02", "plain,etl-a01", "plain,etl-a00"]
    env.update(COMP_WORDS="stateledger audit --run l", COMP_CWORD="3")
    result = subprocess.run([sys.executable, "-m", "eventstore.cli"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.splitlines() == ["plain,latest"]


def test_times_are_labelled_utc(folder):
    path, env = folder
    ran = sl("run", "failing.py", env=env, cwd=path)
    assert ran.stdout.splitlines()[0].endswith("; times UTC)")
    assert sl("audit", env=env, cwd=path).stdout.splitlines()[0].split()[1:3] == ["TIME", "(UTC)"]
    assert sl("runs", env=env, cwd=path).stdout.splitlines()[0].split()[4:6] == ["STARTED", "(UTC)"]
    assert "(times UTC)" in _first_follow_note(path, env)
