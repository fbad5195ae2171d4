"""The HTML report of a run, read as text: what it holds, what it escapes, how the CLI writes it.

Its rendering in a real browser is tested in ``test_report_browser.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore import EventStore, RunNotFoundError
from eventstore.report import render_report, state_class, write_report
from ledger_fixtures import everything_flow, raw
from report_fixtures import HOSTILE, MarkedStore, data_of, hostile_flow
from statemachine import Flow
from statemachine.errors import CommandInputError
from statemachine.states import Cancelled, Failed, Pending, Retrying, Running, Skipped, Success, TimedOut

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "eventstore.cli"]


@pytest.fixture
def everything(store):
    """(store, run_id, flow) of a run with failures, a retry, skips and a handler rewrite."""
    flow = everything_flow()
    return store, flow.run(store=store).context["run_id"], flow


def test_store_report_is_one_self_contained_page(everything):
    store, run_id, _ = everything
    page = store.report(run_id)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "default-src 'none'" in page  # the browser itself refuses any fetch
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "<link rel=\"stylesheet\"" not in page and "<script src" not in page
    assert data_of(page)["run"]["id"] == run_id
    assert page.count("<style>") == 1 and ".tl-rows" in page  # the CSS is inlined


def test_page_data_tells_the_run(everything):
    store, run_id, _ = everything
    data = data_of(render_report(store, run_id))
    view = store.rebuild(run_id)
    tasks = {t["key"]: t for t in data["tasks"]}
    assert set(tasks) == set(view.tasks)
    assert len(data["events"]) == len(store.history(run_id)) == data["run"]["events"]
    assert data["run"]["type"] == "Failed" and data["run"]["finished"]
    assert tasks["boom-1"]["failed"] and tasks["boom-1"]["cls"] == "failed"
    assert tasks["after_boom-1"]["type"] == "TriggerFailed"
    assert tasks["flaky-1"]["attempts"] == 2 and tasks["flaky-1"]["retried"]
    assert tasks["skipper-1"]["cls"] == "skipped"
    assert tasks["slow-1"]["rewritten"] and not tasks["slow-1"]["failed"]
    rewritten = [e for e in data["events"] if "w" in e]
    assert [(e["key"], e["p"], e["n"], e["w"]) for e in rewritten] == [
        ("slow-1", "Failed", "Success", ["ledger_fixtures.forgive"])]
    assert "TimeoutError" in rewritten[0]["pm"]
    assert data["edges"] is None  # the ledger alone does not know the flow's edges
    assert data["verify"] == {"ok": True, "checked": len(data["events"]), "problems": []}


def test_the_flow_given_draws_its_edges(everything):
    store, run_id, flow = everything
    data = data_of(store.report(run_id, flow=flow))
    keys = [t["key"] for t in data["tasks"]]
    edges = {(keys[a], keys[b]) for a, b in data["edges"]}
    assert ("flaky-1", "boom-1") in edges and ("boom-1", "cleanup-1") in edges
    assert len(edges) == sum(len(flow.upstream_edges(t)) for t in flow.tasks)


def test_another_flow_is_refused(everything):
    store, run_id, _ = everything
    with pytest.raises(CommandInputError, match=r"Flow 'other' is not the flow of this run \('everything'\)"):
        store.report(run_id, flow=Flow("other"))


def test_untrusted_text_stays_text(store):
    """Run ids, flow and task names and messages holding markup never become markup."""
    run_id = "run " + HOSTILE
    hostile_flow().run(store=store, run_id=run_id)
    page = store.report(run_id)
    assert page.count("</script>") == 2  # the data block's and the script's own
    assert "<img" not in page and 'onerror="' not in page
    assert "&lt;/script&gt;&lt;img" in page  # the header shows it, escaped
    data = data_of(page)
    assert data["run"]["id"] == run_id and data["run"]["flow"] == "flow " + HOSTILE
    assert data["tasks"][0]["key"] == f"task {HOSTILE}-1"
    assert HOSTILE in data["tasks"][0]["message"]


def test_a_tampered_run_shows_verification_failed(tmp_path):
    path = tmp_path / "ledger.db"
    with EventStore(path) as store:
        run_id = everything_flow().run(store=store).context["run_id"]
    with raw(path) as db:
        db.execute("UPDATE events SET new_state = replace(new_state, 'bad value', 'fine value') WHERE seq = 21")
    with EventStore(path) as store:
        page = store.report(run_id)
    data = data_of(page)
    assert not data["verify"]["ok"]
    assert any("seq 21" in p and "changed" in p for p in data["verify"]["problems"])
    assert "Verification failed" in page and 'class="verify bad"' in page


def test_manual_marks_are_in_the_data(everything):
    store, run_id, _ = everything
    boom = next(e for e in store.history(run_id) if e.key == "boom-1" and e.new_state.is_failed())
    data = data_of(render_report(MarkedStore(store, {boom.seq: "known bad input <b>"}), run_id))
    assert [(e["key"], e["why"]) for e in data["events"] if "why" in e] == [("boom-1", "known bad input <b>")]
    assert next(t for t in data["tasks"] if t["key"] == "boom-1")["marked"]


def test_state_classes_follow_the_hierarchy():
    assert [state_class(s) for s in (Pending(), Retrying(), Running(), Success(), Skipped(),
                                     Failed(), TimedOut(), Cancelled(), None)] == [
        "pending", "retrying", "running", "success", "skipped", "failed", "failed", "cancelled", "none"]


def test_unknown_run_raises_and_writes_nothing(store, tmp_path):
    out = tmp_path / "run.html"
    with pytest.raises(RunNotFoundError, match="No run 'nope'"):
        write_report(store, "nope", out)
    assert not out.exists()


def test_write_report_to_a_path_and_to_an_open_file(everything, tmp_path):
    store, run_id, _ = everything
    write_report(store, run_id, tmp_path / "run.html")
    with open(tmp_path / "again.html", "w", encoding="utf-8") as f:
        write_report(store, run_id, f)
    for name in ("run.html", "again.html"):
        assert data_of((tmp_path / name).read_text(encoding="utf-8"))["run"]["id"] == run_id


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(cwd), "STATELEDGER_DB": str(cwd / "ledger.db")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


def test_cli_writes_the_report(tmp_path):
    flow_file = tmp_path / "fails.py"
    flow_file.write_text((ROOT / "examples" / "report.py").read_text())
    ran = _cli("run", str(flow_file), "--run-id", "r1", cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr
    done = _cli("report", "r1", "-o", "run.html", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    data = data_of((tmp_path / "run.html").read_text(encoding="utf-8"))
    assert [(t["key"], t["type"]) for t in data["tasks"]] == [("render-1", "Success"), ("publish-1", "Failed")]
    assert data["edges"] is None
    piped = _cli("report", "r1", "--flow", str(flow_file), cwd=tmp_path)
    assert piped.returncode == 0 and data_of(piped.stdout)["edges"] == [[0, 1]]


def test_cli_report_of_an_unknown_run_is_one_error_line(tmp_path):
    _cli("run", str(ROOT / "examples" / "report.py"), "--run-id", "r1", cwd=tmp_path)
    missing = _cli("report", "nope", "-o", "run.html", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith("stateledger: error: No run 'nope' in ledger ")
    assert len(missing.stderr.splitlines()) == 1
    assert not (tmp_path / "run.html").exists()
