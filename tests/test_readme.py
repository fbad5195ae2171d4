"""The README runs as written: each of its Python blocks is executed by pytest-markdown-docs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def python_blocks() -> list[str]:
    """The info strings of the README's Python fences (``notest`` ones included)."""
    return re.findall(r"^```(python[^\n]*)$", README.read_text(), flags=re.M)


def test_every_python_block_of_the_readme_runs(tmp_path):
    blocks = python_blocks()
    assert len(blocks) >= 10
    text = README.read_text()
    for found in re.finditer(r"^```python notest$", text, flags=re.M):  # rare, and the README says why
        before = " ".join(text[max(0, found.start() - 300):found.start()].split())
        assert "is not run by the test suite" in before, before
    tested = [b for b in blocks if "notest" not in b.split()]
    assert len(tested) >= len(blocks) - 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATELEDGER") or k.startswith("STATELEDGER_TEST")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--markdown-docs", "-p", "readme_plugin", "-p", "no:cacheprovider",
         "-q", "--rootdir", str(ROOT), str(README)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    server = os.environ.get("STATELEDGER_TEST_PG") or os.environ.get("STATELEDGER_TEST_POSTGRES")
    passed = len(tested) - (0 if server else sum("fixture:postgresql" in b for b in tested))
    assert re.search(rf"\b{passed} passed\b", proc.stdout), proc.stdout[-2000:]


def test_the_console_sessions_say_to_activate_the_virtual_environment():
    text = README.read_text()
    first = text.index("\n$ stateledger")
    assert "source .venv/bin/activate" in text[:first]


def test_every_example_with_a_flow_runs_it_exactly_once_under_stateledger_run(tmp_path):
    from eventstore import EventStore
    from servers import http_receiver

    env = {k: v for k, v in os.environ.items() if not k.startswith("STATELEDGER")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    examples = sorted(p for p in (ROOT / "examples").glob("*.py") if "Flow(" in p.read_text())
    assert [p.name for p in examples] == ["etl.py", "loop.py", "mapped.py", "post_on_finish.py",
                                          "post_on_retry.py", "report.py", "warehouse.py"]
    with http_receiver() as receiver:
        env["STATELEDGER_SECRET_SLACK_WEBHOOK_URL"] = receiver.url
        for example in examples:
            db = tmp_path / f"{example.stem}.db"
            proc = subprocess.run([sys.executable, "-m", "eventstore.cli", "run", str(example), "--db", str(db)],
                                  cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
            assert proc.returncode in (0, 1), proc.stderr
            with EventStore(db) as store:
                assert len(store.runs()) == 1, example.name
    assert len(receiver.requests) == 2  # one post per webhook example: each flow ran once
