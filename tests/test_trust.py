"""Checkpoints, keys, anchors, the runs summary, cursors and schema-1 ledgers, on every recorder."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import stat

import pytest

from eventstore import Checkpoint, EventStore
from eventstore.errors import CheckpointError
from eventstore.memory import MemoryRecorder
from eventstore.protocol import Query
from eventstore.sqlite import SCHEMA_VERSION
from ledger_fixtures import chain, file_digest, raw
from servers import http_receiver
from trust_fixtures import downgrade_to_schema_1, sl


def test_the_root_is_sha256_chained_over_every_hash_in_seq_order(store):
    chain(3).run(store=store, run_id="a")
    chain(2).run(store=store, run_id="b")
    cp = store.checkpoint()
    root = ""
    for event in store.events():
        root = hashlib.sha256((root + event.hash).encode()).hexdigest()
    assert (cp.seq, cp.count, cp.root) == (store.max_seq(), 14, root)
    assert cp.ledger_id == store.recorder.ledger_id() and len(cp.ledger_id) == 32
    assert cp.at.tzinfo is not None and cp.signature is None
    assert store.verify(checkpoints=[cp]).ok


def test_an_empty_ledger_has_an_empty_root(store):
    cp = store.checkpoint()
    assert (cp.seq, cp.count, cp.root) == (0, 0, "")
    chain(2).run(store=store, run_id="a")
    assert store.verify(checkpoints=[cp]).ok


def test_a_checkpoint_round_trips_through_json_and_is_recorded_in_the_ledger(store):
    chain(2).run(store=store, run_id="a")
    cp = store.checkpoint()
    again = Checkpoint.from_json(cp.to_json())
    assert again == cp and json.loads(cp.to_json())["format"] == "stateledger-checkpoint/1"
    assert store.recorder.checkpoints()[-1] == cp.row()


def test_each_event_hash_covers_its_seq_and_run_id(store):
    from eventstore.mapper import chain_hash

    chain(2).run(store=store, run_id="a")
    (row,) = store.recorder.select(Query(limit=1))
    assert row.hash == chain_hash(None, row.content, row.seq)
    assert row.hash != chain_hash(None, row.content, row.seq + 1)
    assert row.hash != chain_hash(None, row.content._replace(run_id="b"), row.seq)


class CountingRecorder(MemoryRecorder):
    """Counts the hashes a checkpoint reads."""

    read = 0

    def hashes(self, after_seq=0, until_seq=None, *, batch=50000):
        for pair in super().hashes(after_seq, until_seq, batch=batch):
            self.read += 1
            yield pair


def test_a_checkpoint_costs_the_events_since_the_previous_one():
    store = EventStore(recorder=CountingRecorder())
    chain(3).run(store=store, run_id="a")
    first = store.checkpoint()
    assert store.recorder.read == 8
    chain(2).run(store=store, run_id="b")
    second = store.checkpoint()
    assert store.recorder.read == 8 + 6 and second.count == 14
    assert store.checkpoint().count == 14 and store.recorder.read == 14  # nothing new: nothing read
    assert store.verify(checkpoints=[first, second]).ok


def test_keygen_writes_a_private_key_readable_by_its_owner_only(tmp_path):
    done = sl("keygen", "audit.key", db=None, cwd=tmp_path)
    assert done.returncode == 0 and "mode 0600" in done.stdout
    assert stat.S_IMODE((tmp_path / "audit.key").stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in (tmp_path / "audit.key.pub").read_bytes()
    again = sl("keygen", "audit.key", db=None, cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.startswith("stateledger: error: Will not overwrite audit.key")


def test_signed_checkpoints_verify_with_the_public_key_only(store, tmp_path):
    from eventstore.checkpoints import generate_keys

    private, public = generate_keys(tmp_path / "k")
    other, other_pub = generate_keys(tmp_path / "other")
    chain(2).run(store=store, run_id="a")
    cp = store.checkpoint(signing_key=private)
    assert cp.signature and cp.signature_ok(public) and not cp.signature_ok(other_pub)
    assert store.verify(checkpoints=[cp], public_key=public).ok
    report = store.verify(checkpoints=[cp], public_key=other_pub)
    assert [(p.run_id, p.seq, p.what) for p in report.problems] == [(None, cp.seq, "signature")]
    with pytest.raises(CheckpointError, match="not an unencrypted PEM private key"):
        store.checkpoint(signing_key=public)


def test_a_changed_checkpoint_fails_its_signature(store, tmp_path):
    from eventstore.checkpoints import generate_keys

    private, public = generate_keys(tmp_path / "k")
    chain(2).run(store=store, run_id="a")
    cp = store.checkpoint(signing_key=private)
    later = Checkpoint(cp.ledger_id, cp.seq, cp.count, cp.root, cp.at + datetime.timedelta(days=1), cp.signature)
    assert not later.signature_ok(public)


def test_verify_rebuilds_the_runs_summary_and_compares_every_column(tmp_path, failing_flow):
    path = tmp_path / "l.db"
    with EventStore(path) as s:
        failing_flow().run(store=s, run_id="f")
    conn = raw(path)
    conn.execute("UPDATE runs SET ended = NULL, events = 6, first_seq = 2 WHERE run_id = 'f'")
    conn.close()
    with EventStore(path) as s:
        (problem,) = s.verify().problems
    assert (problem.run_id, problem.seq, problem.what) == ("f", 6, "summary")
    assert "ended None where the events say '" in problem.detail and "first_seq 2 where the events say 1" in \
        problem.detail


def test_verify_run_id_reads_only_that_run_and_finds_its_events_wherever_they_lie(tmp_path):
    path = tmp_path / "l.db"
    with EventStore(path) as s:
        for run_id in ("a", "b", "c"):
            chain(3).run(store=s, run_id=run_id)
        report = s.verify("b")
        assert report.ok and report.checked == 8 and report.runs == 1
    conn = raw(path)
    conn.execute("UPDATE runs SET first_seq = 12, last_seq = 12, events = 1 WHERE run_id = 'b'")
    conn.close()
    with EventStore(path) as s:
        (problem,) = s.verify("b").problems
    assert problem.what == "count" and "records 1 events but 8 are present" in problem.detail


def test_a_cursor_beyond_the_last_event_or_moved_back_is_reported(tmp_path):
    path = tmp_path / "l.db"
    with EventStore(path) as s:
        chain(3).run(store=s, run_id="a")
        s.save_cursor("pager", 8, {})
        s.save_cursor("mailer", 6, {})
        assert s.verify().ok
    conn = raw(path)
    conn.execute("DELETE FROM events WHERE seq > 6")
    conn.execute("UPDATE cursors SET seq = 2 WHERE name = 'mailer'")
    conn.close()
    with EventStore(path) as s:
        problems = [(p.seq, p.what, p.detail[:41]) for p in s.verify().problems if p.run_id is None]
    assert problems == [
        (2, "cursor", "durable subscription 'mailer' is at seq 2"),
        (8, "cursor", "durable subscription 'pager' handled even"),
    ]


def test_memory_cursors_keep_their_high_water_mark():
    s = EventStore(":memory:")
    chain(2).run(store=s, run_id="a")
    s.save_cursor("c", 5, {})
    s.save_cursor("c", 3, {})
    assert [p.what for p in s.verify().problems] == ["cursor"]


def test_a_schema_1_ledger_is_read_unchanged_and_upgraded_by_its_first_write_without_rehashing(tmp_path):
    path = tmp_path / "old.db"
    with EventStore(path) as s:
        chain(3).run(store=s, run_id="old")
        s.save_cursor("pager", 8, {})
    downgrade_to_schema_1(path)
    before = file_digest(path)
    old_hashes = [r[0] for r in raw(path).execute("SELECT hash FROM events ORDER BY seq")]
    with EventStore(path) as s:
        assert s.verify().ok and s.recorder.ledger_id() is None and s.recorder.checkpoints() == []
        assert len(s.history("old")) == 8
    assert file_digest(path) == before  # reading never writes
    with EventStore(path) as s:
        chain(2).run(store=s, run_id="new")
        cp = s.checkpoint()
        assert s.verify(checkpoints=[cp]).ok and s.recorder.ledger_id() == cp.ledger_id
        assert s.recorder.hash_rules().v2_from == 9
    conn = raw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert [r[0] for r in conn.execute("SELECT hash FROM events WHERE seq <= 8 ORDER BY seq")] == old_hashes
    conn.execute("UPDATE events SET actor = 'x' WHERE seq = 3")  # old rows still catch a change
    conn.close()
    with EventStore(path) as s:
        assert [(p.run_id, p.seq, p.what) for p in s.verify().problems][0] == ("old", 3, "changed")


def test_a_schema_1_ledger_verifies_with_the_old_rule_and_its_export_imports(tmp_path):
    path = tmp_path / "old.db"
    with EventStore(path) as s:
        chain(3).run(store=s, run_id="old")
    downgrade_to_schema_1(path)
    with EventStore(path) as s:
        s.export(tmp_path / "old.jsonl")
    with EventStore(tmp_path / "new.db") as s:
        chain(2).run(store=s, run_id="first")
        assert s.import_jsonl(tmp_path / "old.jsonl") == 8
        s.export(tmp_path / "again.jsonl")
        assert s.verify().ok
    with EventStore(tmp_path / "third.db") as s:  # imported rows keep verifying through a second import
        chain(4).run(store=s, run_id="x")
        assert s.import_jsonl(tmp_path / "again.jsonl") == 14 and s.verify().ok


def test_a_folder_anchor_gets_a_checkpoint_after_each_flow_run(tmp_path):
    folder = tmp_path / "anchor"
    folder.mkdir()
    with EventStore(tmp_path / "l.db", anchor=folder) as s:
        chain(2).run(store=s, run_id="a")
        chain(2).run(store=s, run_id="b")
        files = sorted(folder.iterdir())
        assert [f.name for f in files] == [f"{s.recorder.ledger_id()}-{seq:012d}.json" for seq in (6, 12)]
        cps = [Checkpoint.from_json(f.read_text()) for f in files]
        assert [c.count for c in cps] == [6, 12] and s.verify(checkpoints=files).ok


def test_the_anchor_comes_from_the_environment_and_may_be_signed(tmp_path, monkeypatch):
    from eventstore.checkpoints import generate_keys

    private, public = generate_keys(tmp_path / "k")
    folder = tmp_path / "anchor"
    folder.mkdir()
    monkeypatch.setenv("STATELEDGER_ANCHOR", str(folder))
    monkeypatch.setenv("STATELEDGER_ANCHOR_KEY", private)
    with EventStore(tmp_path / "l.db") as s:
        chain(2).run(store=s, run_id="a")
        (file,) = folder.iterdir()
        assert s.verify(checkpoints=[file], public_key=public).ok


def test_a_failing_anchor_is_logged_loudly_and_never_fails_the_run(tmp_path, caplog):
    with EventStore(tmp_path / "l.db", anchor=tmp_path / "unmounted") as s, caplog.at_level(logging.ERROR):
        state = chain(2).run(store=s, run_id="a")
        assert state.is_successful() and len(s.history("a")) == 6 and s.verify().ok
    (record,) = [r for r in caplog.records if r.name == "eventstore.anchor"]
    assert record.levelno == logging.ERROR and "ANCHOR FAILED" in record.getMessage()
    assert "does not exist" in record.getMessage() and "after run a ended" in record.getMessage()


def test_a_url_anchor_receives_the_checkpoint_as_a_post(tmp_path, caplog):
    with http_receiver() as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/checkpoints"
        with EventStore(tmp_path / "l.db", anchor=url) as s:
            chain(2).run(store=s, run_id="a")
        (request,) = server.requests
        assert request.path == "/checkpoints" and Checkpoint.from_json(request.body).count == 6
    with http_receiver(status=500) as server, caplog.at_level(logging.ERROR):
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        with EventStore(tmp_path / "m.db", anchor=url) as s:
            assert chain(2).run(store=s, run_id="a").is_successful()
    assert any("ANCHOR FAILED" in r.getMessage() and "500" in r.getMessage() for r in caplog.records)


def test_plain_http_anchors_go_to_this_machine_only(tmp_path):
    with pytest.raises(CheckpointError, match="plain http:// is allowed only to this machine"):
        EventStore(tmp_path / "l.db", anchor="http://example.com/cp")
    with pytest.raises(CheckpointError, match="give a folder or an https:// URL"):
        EventStore(tmp_path / "l.db", anchor="ftp://example.com/cp")


def test_checkpoints_given_to_verify_must_be_checkpoints(store, tmp_path):
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(CheckpointError, match="is not a stateledger checkpoint"):
        store.verify(checkpoints=[tmp_path / "x.json"])
    with pytest.raises(CheckpointError, match="takes Checkpoint objects or file paths"):
        store.verify(checkpoints=[42])


def test_a_schema_1_postgresql_ledger_is_read_unchanged_and_upgraded_by_its_first_write(pg_url):
    import psycopg

    from eventstore.mapper import COLUMNS, CONTENT_SLICE, chain_hash

    with EventStore(pg_url) as s:
        chain(3).run(store=s, run_id="old")
        s.save_cursor("pager", 8, {})
        ledger_id = s.recorder.ledger_id()
    schema = '"' + pg_url.rsplit("schema=", 1)[1] + '"'
    with psycopg.connect(pg_url.split("?schema=")[0], autocommit=True) as conn, conn.transaction():
        last: dict = {}
        for r in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM {schema}.events ORDER BY seq").fetchall():
            prev = last.get(r[2])
            last[r[2]] = h = chain_hash(prev, r[CONTENT_SLICE])  # what schema 1 wrote: no seq in the hash
            conn.execute(f"UPDATE {schema}.events SET prev_hash = %s, hash = %s WHERE seq = %s", (prev, h, r[0]))
        for rid, h in last.items():
            conn.execute(f"UPDATE {schema}.runs SET last_hash = %s WHERE run_id = %s", (h, rid))
        for sql in ("DROP TABLE {s}.hash_rules", "DROP TABLE {s}.checkpoints", "ALTER TABLE {s}.cursors DROP COLUMN high",
                    "DELETE FROM {s}.meta WHERE key = 'hash_v2_from'",
                    "UPDATE {s}.meta SET value = '1' WHERE key = 'schema_version'"):
            conn.execute(sql.format(s=schema))
        old = [r[0] for r in conn.execute(f"SELECT hash FROM {schema}.events ORDER BY seq")]
    with EventStore(pg_url) as s:
        assert s.verify().ok and s.recorder.checkpoints() == [] and s.recorder.cursors() == {"pager": (8, 8)}
        chain(2).run(store=s, run_id="new")
        cp = s.checkpoint()
        assert cp.ledger_id == ledger_id and s.verify(checkpoints=[cp]).ok
        assert s.recorder.hash_rules().v2_from == 9
        assert [e.hash for e in s.history("old")] == old


def test_verify_fast_path_never_raises_a_false_alarm_and_still_finds_changes(tmp_path):
    """SQLite writes the content's JSON for verify; a row whose JSON differs is re-checked with row_json."""
    from eventstore.sqlite import SQLiteRecorder

    class OddJSON(SQLiteRecorder):
        def verify_rows(self, q, *, tail=False, batch=5000):
            for row in super().verify_rows(q, tail=tail, batch=batch):
                yield (*row[:-1], row[-1].replace(",", ", "))  # valid JSON, not row_json's

    path = tmp_path / "l.db"
    with EventStore(path) as s:
        chain(3).run(store=s, run_id="a")
    with EventStore(recorder=OddJSON(str(path))) as s:
        report = s.verify()
        assert report.ok and report.checked == 8
    conn = raw(path)
    conn.execute("UPDATE events SET attempt = 2 WHERE seq = 4")
    conn.close()
    for store in (EventStore(path), EventStore(recorder=OddJSON(str(path)))):
        with store:
            assert [(p.run_id, p.seq, p.what) for p in store.verify().problems] == [("a", 4, "changed")]


def test_no_checkpoint_is_taken_of_a_ledger_that_lost_events_its_last_checkpoint_covers(tmp_path):
    from eventstore import LedgerError

    path = tmp_path / "l.db"
    with EventStore(path) as s:
        chain(3).run(store=s, run_id="a")
        s.checkpoint()
    conn = raw(path)
    conn.execute("DELETE FROM events WHERE seq > 5")
    conn.close()
    with EventStore(path) as s, pytest.raises(LedgerError, match="it ends at seq 5 but the checkpoint it "
                                                                 "recorded last covers up to seq 8"):
        s.checkpoint()


def test_a_refused_import_leaves_no_hash_rule_behind(store, tmp_path):
    from eventstore import LedgerError

    with EventStore(tmp_path / "src.db") as src:
        chain(3).run(store=src, run_id="x")
        src.export(tmp_path / "x.jsonl")
    lines = (tmp_path / "x.jsonl").read_text().splitlines()
    bad = [i for i, line in enumerate(lines) if "Task run succeeded." in line][1]
    lines[bad] = lines[bad].replace("Task run succeeded.", "Task run faked.")
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    chain(2).run(store=store, run_id="mine")
    with pytest.raises(LedgerError, match=f"Line {bad + 1} of"):
        store.import_jsonl(tmp_path / "bad.jsonl")
    assert store.recorder.hash_rules().exceptions == {} and store.verify().ok
    assert store.import_jsonl(tmp_path / "x.jsonl") == 8
    rules = store.recorder.hash_rules().exceptions
    assert sorted(hashed for _, hashed in rules.values()) == list(range(1, 9)) and store.verify().ok
