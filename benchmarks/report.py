"""How fast a run's HTML report is written and drawn in a real browser; prints medians.

    python benchmarks/report.py                        # 1,000 tasks, 5 loads
    python benchmarks/report.py --tasks 5000 --repeat 3
    python benchmarks/report.py --screenshot docs/report.png   # also the README's picture

Measures, for one run of N tasks in a SQLite ledger in a temporary folder:
  * ``store.report(run_id)`` in Python (history, rebuild, verify, HTML),
  * in headless Chromium (``/usr/bin/chromium``, or ``$STATELEDGER_CHROMIUM``,
    driven by Playwright): from navigation to the page's ``data-ready`` mark
    (its script has drawn the timeline, the graph and the event table), and
    the wall time of loading it (target: < 2 s for 1,000 tasks).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from eventstore import EventStore
from statemachine import Flow, signals, task, triggers
from statemachine.states import Success

CHROMIUM = os.environ.get("STATELEDGER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def excuse(obj: Any, old: Any, new: Any) -> Any:
    """A state handler turning a failure into a success (a rewrite the report shows)."""
    return Success("failure excused by a handler") if new.is_failed() else new


def wide(n: int) -> Flow:
    """``n`` tasks in groups of ten (a source and nine steps fed by it); a few fail, retry or are rewritten."""
    tries: dict[int, int] = {}

    def step(i: int) -> Any:
        def body(x: int = 0) -> int:
            tries[i] = tries.get(i, 0) + 1
            if i % 100 == 99 or (i % 45 == 44 and tries[i] == 1) or i % 70 == 69:
                raise RuntimeError(f"step {i} broke")
            return x + i

        retries = {"max_retries": 1, "retry_delay": 0} if i % 45 == 44 else {}  # a delay needs retries (Prefect 1)
        return task(body, name=f"step{i // 10}", state_handlers=[excuse] if i % 70 == 69 else None, **retries)

    with Flow("wide") as flow:
        source = None
        for i in range(n):
            source = step(i)() if i % 10 == 0 else step(i)(source)
    return flow


def demo() -> Flow:
    """A small nightly ETL with a retry, a handler rewrite, a skip, a failure and a clean-up."""
    calls = {"load": 0}

    def work(seconds: float) -> None:
        time.sleep(seconds)

    @task
    def extract_orders() -> list[int]:
        work(0.06)
        return [1, 2, 3]

    @task
    def extract_customers() -> list[str]:
        work(0.09)
        return ["ada", "bob"]

    @task
    def clean(rows: list[int]) -> list[int]:
        work(0.03)
        return rows

    @task
    def join(orders: list[int], customers: list[str]) -> int:
        work(0.04)
        return len(orders) * len(customers)

    @task(max_retries=2, retry_delay=0.05)
    def load_warehouse(n: int) -> int:
        calls["load"] += 1
        work(0.04)
        if calls["load"] == 1:
            raise ConnectionError("warehouse closed the connection")
        return n

    @task(state_handlers=[excuse])
    def notify_slack(n: int) -> None:
        work(0.02)
        raise TimeoutError("slack did not answer in 10 s")

    @task
    def refresh_dashboard(n: int) -> None:
        work(0.03)
        raise signals.SKIP("dashboard refreshed less than an hour ago")

    @task
    def publish_report(n: int) -> None:
        work(0.05)
        raise OSError("printer on fire")

    @task
    def archive(x: Any) -> None:
        work(0.01)

    @task(trigger=triggers.all_finished)
    def cleanup(x: Any) -> None:
        work(0.02)

    with Flow("nightly-etl") as flow:
        n = join(clean(extract_orders()), extract_customers())
        loaded = load_warehouse(n)
        notify_slack(loaded)
        refresh_dashboard(loaded)
        published = publish_report(loaded)
        archive(published)
        cleanup(published)
    return flow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--screenshot", metavar="PNG", help="Also write a screenshot of a small demo run's report here.")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, EventStore(Path(folder) / "ledger.db") as store:
        flow = wide(args.tasks)
        run_id = flow.run(store=store).context["run_id"]
        events = len(store.history(run_id))
        renders = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            page_text = store.report(run_id, flow=flow)
            renders.append(time.perf_counter() - start)
        path = Path(folder) / "run.html"
        path.write_text(page_text, encoding="utf-8")
        print(f"{args.tasks} tasks, {events} events; page {len(page_text.encode()) / 1e6:.2f} MB")
        print(f"store.report() in Python:           {statistics.median(renders) * 1000:7.0f} ms")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            ready, wall = [], []
            for _ in range(args.repeat):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                start = time.perf_counter()
                page.goto(path.as_uri())
                page.wait_for_selector("body[data-ready]", timeout=60_000)
                wall.append(time.perf_counter() - start)
                ready.append(float(page.get_attribute("body", "data-ready")))
                page.close()
            print(f"Chromium, navigation to drawn:     {statistics.median(ready):7.0f} ms (target < 2000)")
            print(f"Chromium, goto + wait, wall clock: {statistics.median(wall) * 1000:7.0f} ms")
            if args.screenshot:
                small = demo()
                with EventStore(Path(folder) / "demo.db") as demo_store:
                    small_id = small.run(store=demo_store).context["run_id"]
                    shot = Path(folder) / "demo.html"
                    shot.write_text(demo_store.report(small_id, flow=small), encoding="utf-8")
                page = browser.new_page(viewport={"width": 1200, "height": 820})
                page.goto(shot.as_uri())
                page.wait_for_selector("body[data-ready]")
                page.locator('.row[data-key="notify_slack-1"] .mk-rw').click()
                page.screenshot(path=args.screenshot)
                print(f"screenshot of the demo run's report: {args.screenshot}")
            browser.close()


if __name__ == "__main__":
    main()
