"""Screenshots of every UI page, into ``docs/screenshots/`` (run from the repository root):

    python -m bench.ui_screenshots [--out docs/screenshots]

Seeds a private Redis with demo data (``bench.ui_data``), serves the app on a loopback
port and opens each page in Debian's Chromium (launched by path; Playwright downloads
nothing).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pydantic import SecretStr

from bench.ui_data import CHROMIUM, private_redis, seed_demo, served
from prefect_lite.settings import Settings


def pages(ids: dict[str, object]) -> list[tuple[str, str]]:
    return [
        ("dashboard", "/"),
        ("runs", "/runs"),
        ("runs-filtered", "/runs?state=FAILED&state=CRASHED&range=7d"),
        ("flow-run", f"/flow-runs/{ids['live']}"),
        ("flow-run-failed", f"/flow-runs/{ids['failed']}"),
        ("flow-run-aggregated", f"/flow-runs/{ids['big']}"),
        ("flow-run-waiting", f"/flow-runs/{ids['waiting']}"),
        ("flow-run-paused", f"/flow-runs/{ids['paused']}"),
        ("deployments", "/deployments"),
        ("deployment", f"/deployments/{ids['etl']}"),
        ("deployment-run", f"/deployments/{ids['etl']}/run"),
        ("work-pools", "/work-pools"),
        ("work-pool", "/work-pools/default-pool"),
        ("variables", "/variables"),
        ("blocks", "/blocks"),
        ("api-docs", "/api/docs"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with private_redis(), sync_playwright() as p:
        ids = seed_demo()
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        with served() as base:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            for name, path in pages(ids):
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(args.out / f"{name}.png"), full_page=name != "api-docs")
                print(f"{name}: {path}")
            page.goto(f"{base}/deployments/{ids['etl']}/run")
            page.locator('[name="p.source"]').fill("")
            page.locator('[name="p.ratio"]').fill("a lot")
            page.locator("#run-form button[type=submit]").click()
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(args.out / "deployment-run-errors.png"), full_page=True)
            print("deployment-run-errors: invalid submission")
        with served(Settings(api_key=None, api_keys=SecretStr("admin:demo-key"))) as base:
            page = browser.new_page(viewport={"width": 1280, "height": 640})
            page.goto(f"{base}/runs")  # sent to /login?next=/runs
            page.screenshot(path=str(args.out / "login.png"))
            page.locator("#key").fill("not-a-key")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(args.out / "login-refused.png"))
            print("login, login-refused: with keys configured")
        browser.close()


if __name__ == "__main__":
    main()
