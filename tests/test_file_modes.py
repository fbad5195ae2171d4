"""Ledger files are private whatever the umask, and a --db that is not a file is refused creating nothing."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore import EventStore
from eventstore.errors import LedgerLocationError, NotALedgerError
from eventstore.store import default_path
from statemachine import Flow, task

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o002, 0o000])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_the_ledger_its_wal_and_shm_and_exports_are_created_0600(tmp_path, umask):
    path = tmp_path / "ledger.db"
    with EventStore(path) as store:
        Flow("f", [task(lambda: 1, name="one")]).run(store=store, run_id="r")
        files = {p.name: mode(p) for p in tmp_path.glob("ledger.db*")}
        store.export(tmp_path / "out.jsonl")
        store.export(tmp_path / "out.csv", format="csv")
    assert files == {"ledger.db": 0o600, "ledger.db-wal": 0o600, "ledger.db-shm": 0o600}
    assert mode(tmp_path / "out.jsonl") == 0o600 and mode(tmp_path / "out.csv") == 0o600


def test_a_report_file_is_created_0600(tmp_path, umask):
    from eventstore.report import write_report

    with EventStore(tmp_path / "ledger.db") as store:
        Flow("f", [task(lambda: 1, name="one")]).run(store=store, run_id="r")
        write_report(store, "r", tmp_path / "run.html")
        write_report(store, "r", str(tmp_path / "again.html"))
    assert mode(tmp_path / "run.html") == mode(tmp_path / "again.html") == 0o600
    assert (tmp_path / "run.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_an_existing_ledger_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "ledger.db"
    EventStore(path).close()
    os.chmod(path, 0o640)
    EventStore(path).close()
    assert mode(path) == 0o640


@pytest.mark.parametrize("loose", [0o755, 0o750, 0o777])
def test_a_shared_stateledger_folder_is_tightened_to_0700_with_a_warning(isolated_home, monkeypatch, caplog, loose):
    monkeypatch.delenv("STATELEDGER_DB")
    folder = isolated_home / ".stateledger"
    folder.mkdir()
    os.chmod(folder, loose)
    with caplog.at_level(logging.WARNING, logger="stateledger"):
        assert default_path() == str(folder / "ledger.db")
    assert mode(folder) == 0o700
    assert f"{folder} was accessible to other users (mode {loose:o})" in caplog.text


def test_a_private_or_new_stateledger_folder_brings_no_warning(isolated_home, monkeypatch, caplog, umask):
    monkeypatch.delenv("STATELEDGER_DB")
    with caplog.at_level(logging.WARNING, logger="stateledger"):
        default_path()
        default_path()
    assert mode(isolated_home / ".stateledger") == 0o700 and caplog.text == ""


def test_a_dangling_symlink_is_refused_creating_nothing(tmp_path):
    link = tmp_path / "ledger.db"
    link.symlink_to(tmp_path / "elsewhere" / "target.db")
    with pytest.raises(LedgerLocationError, match="symbolic link to .*target.db, which does not exist"):
        EventStore(link)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "ledger.db"]
    assert not (tmp_path / "elsewhere").exists()


def test_a_fifo_is_refused_creating_nothing(tmp_path):
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    with pytest.raises(NotALedgerError, match="is a FIFO"):
        EventStore(fifo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "pipe.db"]


def test_a_device_is_refused_creating_nothing():
    existed = os.path.exists("/dev/null-journal")
    with pytest.raises(NotALedgerError, match="/dev/null is a character device"):
        EventStore("/dev/null")
    assert os.path.exists("/dev/null-journal") == existed
    assert not os.path.exists("/dev/null-wal") or existed


def sl(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATELEDGER")}
    env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "eventstore.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("kind", ["dangling symlink", "fifo", "device", "directory"])
def test_run_refuses_a_db_that_is_not_a_file_creating_nothing(tmp_path, kind):
    (tmp_path / "flow.py").write_text(
        "from statemachine import Flow, task\nflow = Flow('f', [task(lambda: 1, name='one')])\n")
    target = {"dangling symlink": tmp_path / "link.db", "fifo": tmp_path / "pipe.db",
              "device": Path("/dev/null"), "directory": tmp_path / "folder"}[kind]
    if kind == "dangling symlink":
        target.symlink_to(tmp_path / "missing.db")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    journal_existed = os.path.exists("/dev/null-journal")
    result = sl("run", "flow.py", "--db", str(target), tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("stateledger: error: ")
    assert {"dangling symlink": "symbolic link", "fifo": "FIFO", "device": "character device",
            "directory": "is a folder"}[kind] in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert os.path.exists("/dev/null-journal") == journal_existed
    if kind == "directory":
        assert list(target.iterdir()) == []
