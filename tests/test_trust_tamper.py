"""Tampering as an auditor would try it, on real files, checked by `stateledger verify` in a real process.

Each attack edits the SQLite file with plain SQL; the consistent ones then
recompute every hash and the runs table with the documented algorithm
(``rechain``), which only a checkpoint kept elsewhere can catch. Every one
exits 1 and names the run and seq where it can.
"""

from __future__ import annotations

import json

import pytest

from eventstore import Checkpoint, EventStore
from ledger_fixtures import chain, raw
from trust_fixtures import rechain, sl


@pytest.fixture
def ledger(tmp_path, failing_flow):
    """Runs ok (10 events), bad (Failed, 6 events), new (10 events); a checkpoint of all 26 in cp.json."""
    path = tmp_path / "l.db"
    with EventStore(path) as s:
        chain(4).run(store=s, run_id="ok")
        failing_flow().run(store=s, run_id="bad")
        chain(4).run(store=s, run_id="new")
    done = sl("checkpoint", "-o", str(tmp_path / "cp.json"), db=path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "cp.json").read_text())["count"] == 26
    return path


def verify(path, *args):
    done = sl("verify", *args, db=path)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, done.stdout


def sql(path, *statements):
    conn = raw(path)
    for statement in statements:
        conn.execute(statement)
    conn.close()


def test_an_untouched_ledger_extends_its_checkpoint(ledger):
    code, out = verify(ledger, "--checkpoint", "cp.json")
    assert code == 0 and "OK: 26 events verified" in out and "1 checkpoint(s) extended" in out


ATTACKS = {
    "the run's last events deleted, its runs row fixed": [
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE run_id = 'bad' ORDER BY seq DESC LIMIT 2)"],
    "a whole run deleted": ["DELETE FROM events WHERE run_id = 'bad'"],
    "the newest run deleted": ["DELETE FROM events WHERE run_id = 'new'"],
    "Failed rewritten to Success": [
        "UPDATE events SET state = 'Success', new_state = replace(new_state, '\"type\":\"Failed\"', "
        "'\"type\":\"Success\"') WHERE run_id = 'bad' AND state = 'Failed'"],
    "seqs renumbered": ["UPDATE events SET seq = seq + 1000 WHERE seq > 12"],
    "two runs' ids swapped": ["UPDATE events SET run_id = CASE run_id WHEN 'ok' THEN 'new' ELSE 'ok' END "
                              "WHERE run_id IN ('ok', 'new')"],
    "an actor edited": ["UPDATE events SET actor = 'someone@else:1' WHERE seq = 13"],
    "a timestamp edited": ["UPDATE events SET timestamp = '2020-01-01T00:00:00.000000+00:00' WHERE seq = 13"],
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_consistent_rewrite_before_a_checkpoint_is_caught_by_it(ledger, attack):
    sql(ledger, *ATTACKS[attack])
    rechain(ledger)
    code, out = verify(ledger, "--checkpoint", "cp.json")
    assert code == 1, out
    assert "FAILED" in out and "ledger seq 26: " in out
    assert "events it covers were deleted" in out or "are not those the checkpoint sealed" in out \
        or "were inserted or renumbered" in out


def test_without_a_checkpoint_the_same_edits_are_caught_when_hashes_are_not_recomputed(ledger):
    sql(ledger, "UPDATE events SET seq = seq + 1000 WHERE seq = 26")
    code, out = verify(ledger)
    assert code == 1 and "run new seq 1026: its hash does not match its content and seq" in out
    sql(ledger, "UPDATE events SET seq = 26 WHERE seq = 1026", "UPDATE events SET actor = 'x' WHERE seq = 3")
    code, out = verify(ledger)
    assert code == 1 and "run ok seq 3: its hash does not match" in out


def test_editing_the_runs_table_alone_is_found_column_by_column(ledger):
    sql(ledger, "UPDATE runs SET state = 'Success', last_seq = last_seq - 3 WHERE run_id = 'bad'")
    code, out = verify(ledger)
    assert code == 1
    assert "run bad seq 16: the runs table was edited: it records state 'Success' where the events say " \
        "'Failed', last_seq 13 where the events say 16" in out
    code, out = verify(ledger, "bad")  # verify RUN_ID reads the run's events wherever they lie
    assert code == 1 and "last_seq 13 where the events say 16" in out
    sql(ledger, "UPDATE runs SET state = 'Failed', last_seq = 16, flow = 'other', started = '2020' "
                "WHERE run_id = 'bad'")
    code, out = verify(ledger)
    assert code == 1 and "flow 'other' where the events say 'failing'" in out and "started '2020'" in out


def test_a_deleted_summary_row_or_deleted_events_of_a_known_run_are_found(ledger):
    sql(ledger, "DELETE FROM runs WHERE run_id = 'ok'")
    code, out = verify(ledger)
    assert code == 1 and "run ok seq 10: events of a run the runs table does not know" in out
    rechain(ledger)
    sql(ledger, "DELETE FROM events WHERE run_id = 'ok'")
    code, out = verify(ledger)
    assert code == 1 and "run ok end of run: the runs table records 10 events but none is present" in out


def test_a_signature_made_with_another_key_is_reported(ledger, tmp_path):
    assert sl("keygen", "right.key", db=None, cwd=tmp_path).returncode == 0
    assert sl("keygen", "wrong.key", db=None, cwd=tmp_path).returncode == 0
    done = sl("checkpoint", "--key", "wrong.key", "-o", "signed.json", db=ledger)
    assert done.returncode == 0 and "signed, written to signed.json" in done.stderr
    code, out = verify(ledger, "--checkpoint", "signed.json", "--public-key", "right.key.pub")
    assert code == 1 and "a signature the public key does not verify: it was made with another key" in out
    code, out = verify(ledger, "--checkpoint", "signed.json", "--public-key", "wrong.key.pub")
    assert code == 0, out
    code, out = verify(ledger, "--checkpoint", "cp.json", "--public-key", "right.key.pub")
    assert code == 1 and "ledger seq 26: the checkpoint is not signed" in out


def test_a_checkpoint_of_another_ledger_is_refused_by_its_id(ledger, tmp_path):
    other = tmp_path / "other.db"
    with EventStore(other) as s:
        chain(4).run(store=s, run_id="ok")
        (tmp_path / "other.json").write_text(s.checkpoint().to_json())
    code, out = verify(ledger, "--checkpoint", "other.json")
    assert code == 1 and "the checkpoint was taken of ledger" in out and "not of this one" in out


@pytest.mark.parametrize("content, says", [
    (None, "Cannot read checkpoint file missing.json: No such file or directory."),
    ("{not json", "checkpoint file bad.json is not a stateledger checkpoint"),
    ('{"format": "stateledger-checkpoint/1", "seq": 3}', "checkpoint file bad.json is not a stateledger "
                                                         "checkpoint ('count')"),
])
def test_an_unreadable_or_refused_checkpoint_file_is_one_line_and_exit_2(ledger, tmp_path, content, says):
    name = "missing.json" if content is None else "bad.json"
    if content is not None:
        (tmp_path / name).write_text(content)
    done = sl("verify", "--checkpoint", name, db=ledger)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("stateledger: error: " + says)


def test_a_tampered_checkpoint_file_fails_its_signature_or_its_root(ledger, tmp_path):
    cp = Checkpoint.from_json((tmp_path / "cp.json").read_text())
    forged = json.loads(cp.to_json())
    forged["root"] = "0" * 64
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    code, out = verify(ledger, "--checkpoint", "forged.json")
    assert code == 1 and "ledger seq 26: the events up to seq 26 are not those the checkpoint sealed" in out


def test_stateledger_run_sends_a_checkpoint_to_the_anchor_of_the_environment(tmp_path, monkeypatch):
    (tmp_path / "flow.py").write_text(
        "from statemachine import Flow, task\n\n@task\ndef one():\n    return 1\n\n"
        "with Flow('anchored') as flow:\n    one()\n")
    (tmp_path / "audit").mkdir()
    monkeypatch.setenv("STATELEDGER_ANCHOR", str(tmp_path / "audit"))
    done = sl("run", "flow.py", "--run-id", "r1", db=tmp_path / "l.db")
    assert done.returncode == 0, done.stderr
    (file,) = (tmp_path / "audit").iterdir()
    assert Checkpoint.from_json(file.read_text()).count == 4
    code, out = verify(tmp_path / "l.db", "--checkpoint", str(file))
    assert code == 0 and "1 checkpoint(s) extended" in out
