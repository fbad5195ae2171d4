"""The HTML report in a real headless Chromium (the system's ``/usr/bin/chromium``, driven by Playwright).

Without Chromium these tests skip, saying why; with ``CI`` set they fail
instead, so a CI machine without the browser cannot pass by skipping them.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import io
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from eventstore import EventStore
from eventstore.report import render_report
from ledger_fixtures import everything_flow
from statemachine import Flow
from report_fixtures import HOSTILE, MarkedStore, hostile_flow, wide_flow

CHROMIUM = os.environ.get("STATELEDGER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _missing() -> str | None:
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set STATELEDGER_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright; no browser download needed)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{why}: CI must run the browser tests (.ci/run installs chromium)")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class Opened:
    """A report loaded in a page, with everything that went wrong while it loaded and ran."""

    def __init__(self, browser: Any, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.problems.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready]", timeout=30_000)
        self.ms = float(self.page.get_attribute("body", "data-ready"))

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def visible_keys(self) -> set[str]:
        """Keys of the task rows the reader can see (shown, not only present in the DOM)."""
        return set(self.page.eval_on_selector_all(
            ".row[data-key]", "rs => rs.filter(r => r.checkVisibility()).map(r => r.dataset.key)"))

    def event_seqs(self) -> list[int]:
        return self.page.eval_on_selector_all("#ev-inner .ev-row", "rs => rs.map(r => +r.firstChild.textContent)")

    def event_rows(self) -> list[str]:
        return self.page.eval_on_selector_all("#ev-inner .ev-row", "rs => rs.map(r => r.textContent)")


@pytest.fixture
def open_report(browser, tmp_path):
    """``open_report(page_text)`` -> an ``Opened`` of it, loaded from a file:// URL."""
    pages: list[Opened] = []

    def open_(html: str, name: str = "run.html") -> Opened:
        path = tmp_path / name
        path.write_text(html, encoding="utf-8")
        pages.append(Opened(browser, path.as_uri()))
        return pages[-1]

    yield open_
    for opened in pages:
        opened.page.close()


@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    """(store, run_id, flow): failures, a retry, skips and a handler rewrite, in a SQLite ledger."""
    store = EventStore(tmp_path_factory.mktemp("ledger") / "ledger.db")
    flow = everything_flow()
    yield store, flow.run(store=store).context["run_id"], flow
    store.close()


def test_report_loads_without_console_errors_or_requests(everything, open_report):
    store, run_id, _ = everything
    opened = open_report(store.report(run_id))
    assert opened.problems == []
    assert [u for u in opened.requests if not u.startswith("file://")] == []
    assert opened.page.title().startswith(f"everything run {run_id}")
    assert opened.page.inner_text("#verify").startswith("✔ Ledger verified")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """A static file server for ``folder`` on 127.0.0.1."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_report_served_over_http_asks_for_nothing_else(everything, browser, tmp_path):
    store, run_id, _ = everything
    (tmp_path / "run.html").write_text(store.report(run_id), encoding="utf-8")
    with serve(tmp_path) as base:
        opened = Opened(browser, f"{base}/run.html")
        try:
            assert opened.problems == []
            assert opened.requests == [f"{base}/run.html"]  # no favicon, font, script or style fetched
            assert opened.count(".row[data-key]") == 11
        finally:
            opened.page.close()


def test_the_timeline_has_a_row_per_task(everything, open_report):
    store, run_id, _ = everything
    opened = open_report(store.report(run_id))
    keys = opened.page.eval_on_selector_all(".row[data-key]", "rs => rs.map(r => r.dataset.key)")
    assert sorted(keys) == sorted(store.rebuild(run_id).tasks)
    assert opened.count(".row.flow") == 1
    assert opened.page.inner_text("#tl-count") == "11 tasks"


def test_a_failed_task_and_a_rewritten_transition_are_marked(everything, open_report):
    store, run_id, _ = everything
    opened = open_report(store.report(run_id))
    page = opened.page
    boom = page.locator('.row[data-key="boom-1"]')
    assert "is-failed" in boom.get_attribute("class")
    assert boom.locator(".flag.f-failed").inner_text() == "✕ Failed"
    assert boom.locator(".seg.end.c-failed").count() == 1
    assert page.locator('.row[data-key="after_boom-1"] .flag.f-failed').inner_text() == "✕ TriggerFailed"
    assert page.locator('.row[data-key="extract-1"] .flag').count() == 0
    assert page.locator('.row[data-key="flaky-1"] .flag.f-retried').inner_text() == "↻2"
    assert page.locator('.row[data-key="flaky-1"] .seg.c-retrying').count() == 1
    slow = page.locator('.row[data-key="slow-1"]')
    assert "is-rewritten" in slow.get_attribute("class")
    assert page.locator(".mk-rw").count() == 1 and slow.locator(".mk-rw").count() == 1
    assert "rewritten by ledger_fixtures.forgive" in slow.locator(".mk-rw").get_attribute("title")
    slow.locator(".mk-rw").click()
    details = page.locator("#details")
    assert details.is_visible()
    text = details.inner_text()
    assert "A state handler rewrote this transition: Failed was proposed, ledger_fixtures.forgive turned it into Success" in text
    assert "TimeoutError('no answer in 30s')" in text
    assert opened.problems == []


def test_the_event_table_filters_by_task_state_and_text(everything, open_report):
    store, run_id, _ = everything
    opened = open_report(store.report(run_id))
    page = opened.page
    assert len(opened.event_rows()) == 25 and page.inner_text("#ev-count") == "25 events"
    page.fill("#ev-text", "connectionerror")
    assert opened.event_seqs() == [13, 14]  # the failure and the retry it led to
    page.fill("#ev-text", "")
    page.select_option("#ev-task", label="flaky-1")
    assert len(opened.event_rows()) == 5 and page.inner_text("#ev-count") == "5 of 25 events"
    page.select_option("#ev-task", label="all")
    page.select_option("#ev-state", "TriggerFailed")
    assert len(rows := opened.event_rows()) == 1 and "after_boom-1" in rows[0]
    page.select_option("#ev-state", "")
    page.check("#ev-rewritten")
    assert len(rows := opened.event_rows()) == 1 and "slow-1" in rows[0] and "forgive" in rows[0]
    page.locator("#ev-inner .ev-row").click()
    assert "Event 9: slow-1" in page.inner_text("#details")
    assert opened.problems == []


def test_the_timeline_filters_to_the_tasks_worth_a_look(everything, open_report):
    store, run_id, _ = everything
    opened = open_report(store.report(run_id))
    opened.page.check("#tl-notable")
    assert opened.visible_keys() == {"flagged-1", "slow-1", "flaky-1", "boom-1", "after_boom-1"}
    opened.page.uncheck("#tl-notable")
    opened.page.fill("#tl-filter", "boom")
    assert opened.visible_keys() == {"boom-1", "after_boom-1"}
    opened.page.fill("#tl-filter", "")
    opened.page.select_option("#tl-class", "skipped")
    assert opened.visible_keys() == {"skipper-1", "after_skip-1"}
    assert opened.page.inner_text("#tl-count") == "2 of 11 tasks"


def test_a_manual_mark_is_flagged_and_explained(everything, open_report):
    store, run_id, _ = everything
    boom = next(e for e in store.history(run_id) if e.key == "boom-1" and e.new_state.is_failed())
    opened = open_report(render_report(MarkedStore(store, {boom.seq: "bad input, fixed upstream"}), run_id))
    page = opened.page
    row = page.locator('.row[data-key="boom-1"]')
    assert row.locator(".flag.f-marked").count() == 1
    row.locator(".mk-mark").click()
    assert "A manual mark by " in page.inner_text("#details") and "bad input, fixed upstream" in page.inner_text("#details")
    page.check("#ev-marked")
    assert len(rows := opened.event_rows()) == 1 and "⚑ bad input, fixed upstream" in rows[0]


def test_the_task_graph_draws_the_flows_edges(everything, open_report):
    store, run_id, flow = everything
    drawn = open_report(store.report(run_id, flow=flow), "graph.html")
    assert drawn.count("#graph-view svg g[data-key]") == 11
    assert drawn.count("#graph-view svg path") == sum(len(flow.upstream_edges(t)) for t in flow.tasks) == 6
    listed = open_report(store.report(run_id), "list.html")
    assert listed.count("#graph-view svg") == 0
    assert listed.page.eval_on_selector_all("#graph-view .chip", "cs => cs.map(c => c.textContent)")[:3] == [
        "extract-1", "skipper-1", "flagged-1"]  # in commit order
    assert "but not the flow's edges" in listed.page.inner_text("#graph-note")
    assert drawn.problems == listed.problems == []


def test_markup_in_names_and_messages_stays_text(open_report):
    store = EventStore(":memory:")
    run_id = "run " + HOSTILE
    hostile_flow().run(store=store, run_id=run_id)
    opened = open_report(store.report(run_id))
    page = opened.page
    assert page.locator("img").count() == 0
    assert page.title() != "42" and page.inner_text("#run-id") == run_id
    assert page.locator(".row[data-key] .label").first.evaluate("l => l.firstChild.textContent") == f"task {HOSTILE}-1"
    assert HOSTILE in page.inner_text("#ev-inner")
    assert opened.problems == []


def test_a_screenshot_shows_the_run(everything, browser, open_report):
    """Not blank: many colours, and the failed red and success green of the timeline's bars."""
    store, run_id, _ = everything
    opened = open_report(store.report(run_id))
    png = opened.page.screenshot(full_page=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    probe = browser.new_page()
    try:
        colours, ink, red, green = probe.evaluate("""async (b64) => {
            const img = new Image(); img.src = "data:image/png;base64," + b64; await img.decode();
            const c = document.createElement("canvas"); c.width = img.width; c.height = img.height;
            const g = c.getContext("2d"); g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data, seen = new Set();
            let ink = 0, red = 0, green = 0;
            for (let i = 0; i < d.length; i += 4) {
              seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
              if (d[i] + d[i + 1] + d[i + 2] < 600) ink++;
              if (d[i] === 220 && d[i + 1] === 38 && d[i + 2] === 38) red++;
              if (d[i] === 22 && d[i + 1] === 163 && d[i + 2] === 74) green++;
            }
            return [seen.size, ink / (d.length / 4), red, green];
        }""", base64.b64encode(png).decode())
    finally:
        probe.close()
    assert colours > 50 and ink > 0.03
    assert red > 100 and green > 100


def test_a_thousand_task_run_renders(browser, open_report, tmp_path):
    """Every task gets a row; the event table keeps only the rows in view in the DOM."""
    store = EventStore(tmp_path / "ledger.db")
    flow = wide_flow(1000)
    run_id = flow.run(store=store).context["run_id"]
    opened = open_report(store.report(run_id, flow=flow))
    assert opened.count(".row[data-key]") == 1000
    assert opened.page.inner_text("#ev-count") == f"{len(store.history(run_id))} events"
    assert 0 < len(opened.event_rows()) < 120
    # a long run opens grouped by task name: 100 summary rows, each opening on a click
    assert opened.page.is_checked("#tl-group") and opened.count(".row.group") == 100
    assert opened.visible_keys() == set()
    opened.page.locator('.row.group[data-group="step9"] .label').click()
    assert opened.visible_keys() == {f"step9-{i}" for i in range(1, 11)}
    assert opened.page.locator('.row.group[data-group="step9"] .flag.f-failed').inner_text() == "✕1"
    opened.page.check("#tl-notable")
    history = store.history(run_id)
    worth = {e.key for e in history if e.kind == "task" and (e.rewritten_by or e.new_state.is_retrying())}
    worth |= {k for k, s in store.rebuild(run_id).tasks.items() if s.is_failed()}
    assert len(worth) > 30 and opened.visible_keys() == worth
    assert opened.problems == []
    print(f"1,000 tasks, {len(history)} events: ready {opened.ms:.0f} ms after navigation")


def test_an_unfinished_run_and_a_run_without_tasks_draw_cleanly(everything, open_report):
    store, run_id, _ = everything
    exported = io.StringIO()
    store.export(exported, run_id=run_id)
    unfinished = EventStore(":memory:")  # the run as a crashed process left it: no end
    unfinished.import_jsonl(io.StringIO("".join(exported.getvalue().splitlines(keepends=True)[:-3])))
    opened = open_report(unfinished.report(run_id), "unfinished.html")
    assert opened.page.locator(".row.flow .seg.open.c-running").count() == 1
    assert "not finished; last event" in opened.page.inner_text("header")
    empty = Flow("empty")
    empty_id = empty.run(store=unfinished).context["run_id"]
    bare = open_report(unfinished.report(empty_id, flow=empty), "empty.html")
    assert bare.count(".row[data-key]") == 0 and bare.count(".row.flow") == 1
    assert bare.page.inner_text("#graph-note") == "No task of this run has committed a transition."
    assert opened.problems == bare.problems == []
