"""A task's failure keeps where it failed: the traceback, masked and cut, in the event; show/audit/export print it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from eventstore import EventStore
from eventstore.cli import main
from eventstore.codec import PART_LIMIT
from statemachine import Flow, Secret, task


def _failing(name="tb"):
    @task
    def parse_row(row):
        token = Secret("TB_TOKEN").get()  # a secret the failure's message gives away
        raise ValueError(f"bad row {row!r} (token {token})")

    with Flow(name) as flow:
        parse_row("x")
    return flow


def test_a_failed_task_stores_its_traceback_masked(store, monkeypatch):
    monkeypatch.setenv("STATELEDGER_SECRET_TB_TOKEN", "hunter2-tb-secret")
    state = _failing().run(store=store, run_id="tb")
    assert state.is_failed()
    failed, = [e for e in store.history("tb") if e.kind == "task" and e.new_state.is_failed()]
    text = failed.traceback
    assert text.startswith("Traceback (most recent call last):\n")
    assert "in parse_row" in text and 'raise ValueError(f"bad row {row!r} (token {token})")' in text
    assert text.rstrip().endswith("ValueError: bad row 'x' (token ***)")
    assert "hunter2-tb-secret" not in text
    ok = [e for e in store.history("tb") if not e.new_state.is_failed()]
    assert all(e.traceback is None for e in ok)


def test_a_very_long_traceback_is_cut_keeping_its_end(store):
    @task
    def deep():
        error = None
        for i in range(2000):  # a long chain of causes: a long traceback
            try:
                raise RuntimeError(f"layer {i}") from error
            except RuntimeError as exc:
                error = exc
        raise ValueError("x" * 100_000 + " bottom") from error

    with Flow("deep") as flow:
        deep()
    flow.run(store=store, run_id="deep")
    text, = [e.traceback for e in store.history("deep") if e.traceback]
    assert text.startswith("<traceback cut: ") and f"the last {PART_LIMIT} kept>\n" in text
    assert "RuntimeError: layer 1999" in text and "RuntimeError: layer 0\n" not in text
    last = text.rstrip().splitlines()[-1]
    assert last.startswith("ValueError: xxx") and last.endswith("x bottom") and "characters cut>" in last
    assert len(text) < PART_LIMIT + 100


def test_show_and_audit_print_the_traceback_and_exports_carry_it(tmp_path, monkeypatch):
    monkeypatch.setenv("STATELEDGER_SECRET_TB_TOKEN", "hunter2-tb-secret")
    db = tmp_path / "tb.db"
    with EventStore(db) as store:
        _failing().run(store=store, run_id="tb-cli")
    runner = CliRunner()
    plain = runner.invoke(main, ["show", "tb-cli", "--db", str(db)])
    assert plain.exit_code == 0 and "Traceback" not in plain.output
    shown = runner.invoke(main, ["show", "tb-cli", "--traceback", "--db", str(db)])
    assert shown.exit_code == 0
    assert "| Traceback (most recent call last):" in shown.output
    assert "| ValueError: bad row 'x' (token ***)" in shown.output
    audited = runner.invoke(main, ["audit", "--run", "tb-cli", "--state", "Failed", "--traceback", "--db", str(db)])
    assert audited.exit_code == 0
    assert "(tb-cli parse_row-1) failed here:\n    Traceback (most recent call last):" in audited.output
    exported = runner.invoke(main, ["export", "--run", "tb-cli", "--db", str(db)])
    records = [json.loads(line) for line in exported.output.splitlines()]
    traces = [r["new_state"].get("traceback") for r in records if r["new_state"].get("traceback")]
    assert len(traces) == 1 and traces[0].rstrip().endswith("ValueError: bad row 'x' (token ***)")
    csv = runner.invoke(main, ["export", "--format", "csv", "--run", "tb-cli", "--db", str(db)])
    assert "Traceback (most recent call last)" in csv.output and "hunter2" not in csv.output + exported.output
    as_json = json.loads(runner.invoke(main, ["show", "tb-cli", "--json", "--db", str(db)]).output)
    task_events = [o for o in as_json["objects"] if o["key"] == "parse_row-1"][0]["events"]
    assert "traceback" in task_events[-1]["new_state"]
