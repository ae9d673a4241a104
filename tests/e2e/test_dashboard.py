"""The dashboard at /ui in real headless Chromium (Debian's package, driven by Playwright),
against the real `fanout serve`. Screenshots land in the test's temporary directory."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.harness import Launcher, Server

CHROMIUM = "/usr/bin/chromium"
# As root and on a machine with no network but loopback: no sandbox, and none of Chromium's
# background connections (refused here, many at a time).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "key-a"
AUTH = {"authorization": f"Bearer {KEY}"}

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (scripts/install-bench-deps installs it)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.screenshot(path=tmp_path / "last.png", full_page=True)
    context.close()
    assert errors == [], f"the page raised: {errors}"


def submit(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/jobs", json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def sign_in(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/ui")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#api-key", "wrong")
    page.click("#login-form button")
    expect(page.locator("#login-error")).to_have_text("That API key was refused.")
    page.fill("#api-key", KEY)
    page.click("#login-form button")
    expect(page.locator("#jobs")).to_be_visible()


def test_the_dashboard_asks_for_the_key_lists_jobs_and_follows_one_to_100_percent(
    fanout: Launcher, page: Page, tmp_path: Path
) -> None:
    server = fanout.serve(env={"FANOUT_API_KEYS": f"{KEY}:tenant-a,key-b:tenant-b"})
    sign_in(page, server)
    items = list(range(20))
    job = submit(
        server,
        {
            "task": "gated",
            "items": items,
            "params": {"dir": str(tmp_path), "gate_at": 10},
            "chunk_size": 1,
            "max_concurrency": 2,
        },
    )
    row = page.locator(f"tr[data-job='{job['id']}']")
    expect(row).to_contain_text("gated")
    row.locator("a").click()
    expect(page.locator("#percent")).to_have_text("50 %")
    expect(page.locator("#job-status")).to_have_text("running")
    expect(page.locator("#live")).to_have_text("live")
    page.screenshot(path=tmp_path / "running.png", full_page=True)
    (tmp_path / "go").touch()
    expect(page.locator("#percent")).to_have_text("100 %")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#counts [data-name='succeeded'] dd")).to_have_text("20")
    expect(page.locator("#no-failures")).to_be_visible()
    expect(page.locator("#cancel")).to_be_hidden()
    page.screenshot(path=tmp_path / "succeeded.png", full_page=True)

    page.click("header nav a[href='#/']")
    expect(row.locator(".status")).to_have_text("succeeded")
    expect(row).to_contain_text("100 %")
    page.screenshot(path=tmp_path / "jobs.png", full_page=True)


def test_failed_items_show_their_errors_redrive_fixes_them_and_cancel_stops_a_job(
    fanout: Launcher, page: Page, tmp_path: Path
) -> None:
    server = fanout.serve(env={"FANOUT_API_KEYS": f"{KEY}:tenant-a"})
    sign_in(page, server)
    failing = submit(
        server,
        {
            "task": "fail_until_fixed",
            "items": list(range(6)),
            "params": {"dir": str(tmp_path), "fail": [1, 4]},
            "chunk_size": 2,
        },
    )
    page.goto(f"{server.url}/ui/#/jobs/{failing['id']}")
    expect(page.locator("#job-status")).to_have_text("failed")
    failures = page.locator("#failed-rows tr")
    expect(failures).to_have_count(2)
    expect(failures.nth(0)).to_contain_text("ValueError")
    expect(failures.nth(0)).to_contain_text("item 1 is broken")
    expect(failures.nth(1)).to_contain_text("item 4 is broken")
    expect(page.locator("#redrive")).to_be_visible()
    page.screenshot(path=tmp_path / "failed.png", full_page=True)

    (tmp_path / "fixed").touch()
    page.click("#redrive")
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#percent")).to_have_text("100 %")
    expect(page.locator("#details [data-name='redrives'] dd")).to_have_text("1")
    expect(page.locator("#failed-rows tr")).to_have_count(0)
    expect(page.locator("#no-failures")).to_be_visible()
    expect(page.locator("#redrive")).to_be_hidden()
    page.screenshot(path=tmp_path / "redriven.png", full_page=True)

    running = submit(
        server, {"task": "gated", "items": [1, 2, 3], "params": {"dir": str(tmp_path)}}
    )
    page.goto(f"{server.url}/ui/#/jobs/{running['id']}")
    expect(page.locator("#job-status")).to_have_text("running")
    page.click("#cancel")
    expect(page.locator("#job-status")).to_have_text("cancelled")
    expect(page.locator("#counts [data-name='cancelled'] dd")).to_have_text("3")
    (tmp_path / "go").touch()


def test_the_dashboard_ships_in_the_package_and_loads_nothing_from_elsewhere(
    fanout: Launcher,
) -> None:
    server = fanout.serve()
    page = httpx.get(f"{server.url}/ui/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("", "app.js", "style.css"):
        response = httpx.get(f"{server.url}/ui/{asset}")
        assert response.status_code == 200
        assert re.search(r"https?://|//[a-z]", response.text) is None, f"{asset} names a host"
    assert httpx.get(f"{server.url}/ui", follow_redirects=False).headers["location"] == "/ui/"
