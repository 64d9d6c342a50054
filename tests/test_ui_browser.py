"""The web UI in a real browser: Playwright for Python driving Debian's Chromium.

Against a real server (with its scheduler) and a real worker, as a user would: sign in
with a key, open the dashboard, filter runs, trigger a deployment from its form and watch
the run complete live, read its logs, cancel a running run, resume a paused run through
its input form, pause a pool. Chromium is launched by its path (nothing is downloaded);
without it these tests fail under CI (``CI=true``) and skip elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prefect_lite.api.flow_runs import create_flow_run
from prefect_lite.schemas import TaskRun
from prefect_lite.server import create_app
from prefect_lite.settings import Settings
from prefect_lite.states import Completed, Running
from prefect_lite.storage import runs
from tests._live_server import serve
from tests.test_e2e_remote import POOL, Stack, running_stack

FLOWS = "tests/fixtures/ui_flows.py"
KEY = "ui-browser-s3cret"
STEP_TIMEOUT_MS = 30_000


def chromium_path() -> str:
    found = os.environ.get("PREFECT_LITE_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    reason = "Chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: the browser tests must run in CI")
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    path = chromium_path()
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def _deploy(stack: Stack, function: str) -> None:
    done = stack.cli("deploy", f"{FLOWS}:{function}", "--name", "ui", "--pool", POOL)
    assert done.returncode == 0, done.stderr


def _trigger(page: Any, base: str, deployment: str, **values: str) -> str:
    """Open the deployment, fill its Run form, submit; the new run's id."""
    page.goto(f"{base}/deployments")
    page.get_by_role("link", name=deployment, exact=True).click()
    page.locator("#run-deployment").click()
    for name, value in values.items():
        page.locator(f'[name="p.{name}"]').fill(value)
    page.locator("#run-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/flow-runs/[0-9a-f-]{36}$"))
    return str(page.url.rsplit("/", 1)[1])


def _state_is(page: Any, name: str) -> None:
    """Wait until the page's live state (refreshed by polling, no reload) shows ``name``."""
    from playwright.sync_api import expect

    expect(page.locator("#run-state")).to_have_text(name, timeout=STEP_TIMEOUT_MS)


def test_operate_runs_deployments_and_pools_in_a_browser(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with running_stack(tmp_path, api_key=KEY) as stack:
        for function in ("add", "slow", "approval"):
            _deploy(stack, function)
        base = stack.api_url.removesuffix("/api")
        page = browser.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)

        # Sign in (the key goes into an HttpOnly cookie), then the dashboard.
        page.goto(f"{base}/")
        expect(page).to_have_url(re.compile(r"/login\?next=/$"))
        page.locator("#key").fill(KEY)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("h1")).to_have_text("Dashboard")
        expect(page.locator(".who")).to_contain_text("role: admin")

        # Trigger from the form with parameters; the run completes live; its logs.
        run_id = _trigger(page, base, "add/ui", a="40", b="2")
        _state_is(page, "Completed")
        page.goto(f"{base}/flow-runs/{run_id}")
        expect(page.locator("#logs")).to_contain_text("sum is 42")
        expect(page.locator("pre.json")).to_contain_text('"a": 40')

        # Filter runs by state and flow: the filters land in the URL.
        page.goto(f"{base}/runs")
        page.locator('input[name="state"][value="COMPLETED"]').check()
        page.locator('input[name="flow"]').fill("add")
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(r"state=COMPLETED.*flow=add"))
        expect(page.locator("#runs-table")).to_contain_text(run_id[:8])

        # Cancel a running run.
        slow_id = _trigger(page, base, "slow/ui")
        _state_is(page, "Running")
        page.locator("#cancel-run").click()
        _state_is(page, "Cancelled")

        # Resume a paused run through its input form (an inline error first).
        approval_id = _trigger(page, base, "approval/ui")
        _state_is(page, "Paused")
        form = page.locator("#resume-form")
        form.locator('[name="p.approved"]').select_option("true")
        form.locator("button[type=submit]").click()
        expect(page.locator(".field-error")).to_contain_text("Note is required")
        page.locator('#resume-form [name="p.approved"]').select_option("true")
        page.locator('#resume-form [name="p.note"]').fill("ship it")
        page.locator("#resume-form button[type=submit]").click()
        _state_is(page, "Completed")
        page.goto(f"{base}/flow-runs/{approval_id}")
        expect(page.locator("#logs")).to_contain_text("approved=True note=ship it")

        # Pause the pool.
        page.goto(f"{base}/work-pools/{POOL}")
        expect(page.locator("#pool-status")).to_have_text("ready")
        page.locator("#pool-toggle").click()
        expect(page.locator("#pool-status")).to_have_text("paused")
        assert slow_id != approval_id


def test_a_run_with_ten_thousand_task_runs_stays_a_small_page(browser: Any) -> None:
    run = create_flow_run("big", state=Running())
    batch = runs.RunBatch()
    for i in range(10_000):
        task = TaskRun(
            name=f"step_{i % 7}-{i}",
            flow_run_id=run.id,
            task_key=f"f.step_{i % 7}",
            dynamic_key=str(i),
        )
        batch.create("task", task, Completed())
    batch.execute()
    with serve(create_app(Settings(api_key=None))) as base:
        page = browser.new_page()
        page.goto(f"{base}/flow-runs/{run.id}")
        page.wait_for_load_state("networkidle")
        nodes = page.evaluate("document.getElementsByTagName('*').length")
        rows = page.locator(".g-row").count()
        page.close()
    assert rows == 7  # one bar per task, not one per task run
    assert nodes < 1000, nodes
