"""Trust with real processes: no false alarm while 8 processes write; a lost or cut -wal file is caught."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from eventstore import EventStore
from trust_fixtures import sl

WRITER = textwrap.dedent("""
    import sys
    from eventstore import EventStore
    from statemachine import Flow, task

    path, name, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])

    @task
    def step(x=0):
        return x + 1

    with Flow("busy") as flow:
        x = step()
        for _ in range(3):
            x = step(x)
    with EventStore(path) as store:
        for i in range(runs):
            assert flow.run(store=store, run_id=f"{name}-{i}").is_successful()
            store.save_cursor(name, store.max_seq(), {"writer": name})
""")


def test_verify_raises_no_false_alarm_while_8_processes_write(tmp_path):
    path = tmp_path / "busy.db"
    EventStore(path).close()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{i}", "25"], stderr=subprocess.PIPE,
                                text=True) for i in range(8)]
    reports, checkpoints, cli = [], [], []
    with EventStore(path) as store:
        while any(w.poll() is None for w in writers):
            reports.append(store.verify())
            checkpoints.append(store.checkpoint())
            if len(reports) % 10 == 1:
                cli.append(sl("verify", db=path))
        for w in writers:
            _, err = w.communicate(timeout=120)
            assert w.returncode == 0, err
        final = store.verify(checkpoints=checkpoints)
    assert len(reports) >= 3 and len(cli) >= 1
    assert [str(r) for r in reports if not r.ok] == []
    assert all(c.returncode == 0 for c in cli), [c.stdout for c in cli if c.returncode]
    assert final.ok and final.checked == 8 * 25 * 10 and final.checkpoints == len(checkpoints)
    assert len({r.checked for r in reports}) > 1  # verify did run while the ledger grew


KILLED = textwrap.dedent("""
    import sys, time
    from eventstore import EventStore
    from ledger_fixtures import chain

    path, out = sys.argv[1], sys.argv[2]
    store = EventStore(path)
    for i in range(3):
        chain(4).run(store=store, run_id=f"r{i}")
    with open(out, "w") as f:
        f.write(store.checkpoint().to_json())
    print("sealed", flush=True)
    time.sleep(60)  # killed here: the events live in the -wal file only
""")


@pytest.mark.parametrize("loss", ["deleted", "truncated"])
def test_a_lost_wal_file_holding_events_a_checkpoint_covers_is_reported(tmp_path, loss):
    path, cp = tmp_path / "crash.db", tmp_path / "cp.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(path), str(cp)], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout.readline().strip() == "sealed"
        wal = tmp_path / "crash.db-wal"
        assert wal.stat().st_size > 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert sl("verify", "--checkpoint", "cp.json", db=path).returncode == 0  # the -wal still holds them
    if loss == "deleted":
        wal.unlink()
    else:
        with open(wal, "r+b") as f:
            f.truncate(wal.stat().st_size // 3)
    time.sleep(0.01)
    done = sl("verify", "--checkpoint", "cp.json", db=path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ledger seq 30: the checkpoint sealed 30 events up to seq 30 but" in done.stdout
    assert "lost with the ledger's -wal file" in done.stdout
