"""The default wiring: flow.run() with no store records into the ledger at STATELEDGER_DB."""

import subprocess
import sys
import textwrap

from eventstore import EventStore
from statemachine import Flow, Task


def test_run_without_a_store_uses_the_ledger_at_stateledger_db(tmp_path, monkeypatch):
    monkeypatch.setenv("STATELEDGER_DB", str(tmp_path / "a.db"))
    Flow("f", tasks=[Task()]).run(run_id="a-1")
    monkeypatch.setenv("STATELEDGER_DB", str(tmp_path / "b.db"))  # read when needed, not once
    Flow("f", tasks=[Task()]).run(run_id="b-1")
    with EventStore(str(tmp_path / "a.db")) as a, EventStore(str(tmp_path / "b.db")) as b:
        assert [r.run_id for r in a.runs()] == ["a-1"]
        assert [r.run_id for r in b.runs()] == ["b-1"]


def test_forked_children_open_their_own_connection_to_the_default_ledger(tmp_path):
    script = textwrap.dedent("""
        import os
        from statemachine import Flow, Task, wiring
        Flow("parent", tasks=[Task()]).run(run_id="p")
        parents = wiring.default_ledger()
        children = []
        for i in range(3):
            pid = os.fork()
            if pid == 0:
                Flow("child", tasks=[Task()]).run(run_id=f"c{i}")
                os._exit(0 if wiring.default_ledger() is not parents else 3)
            children.append(pid)
        assert all(os.waitpid(pid, 0)[1] == 0 for pid in children)
    """)
    db = tmp_path / "forks.db"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60,
                   env={"STATELEDGER_DB": str(db), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    with EventStore(str(db)) as store:
        assert sorted(r.run_id for r in store.runs()) == ["c0", "c1", "c2", "p"]
        assert all(r.events == 4 for r in store.runs())
        assert store.verify().ok
