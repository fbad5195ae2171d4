"""The mapping and LOOP examples in examples/ run and print what their .expected files say."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("example", ["mapped", "loop"])
def test_example_prints_its_expected_output(example, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATELEDGER")}
    env.update(STATELEDGER_DB=str(tmp_path / "ledger.db"), HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    ran = subprocess.run([sys.executable, str(ROOT / "examples" / f"{example}.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == (ROOT / "examples" / f"{example}.expected").read_text()
    assert (tmp_path / "ledger.db").exists()
