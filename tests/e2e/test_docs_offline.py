"""The API docs in real headless Chromium with every request off this machine refused: Swagger UI
and ReDoc still render the document, from the assets `fanout serve` itself serves."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.e2e.harness import Launcher, Server
from tests.e2e.test_dashboard import CHROMIUM, FLAGS

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (scripts/install installs it)",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


class Offline:
    """A page whose requests to any host but 127.0.0.1 are refused, and recorded."""

    def __init__(self, browser: Browser) -> None:
        self.context = browser.new_context()
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.refused: list[str] = []
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort()


@pytest.fixture
def offline(browser: Browser) -> Iterator[Offline]:
    offline = Offline(browser)
    yield offline
    offline.context.close()


@pytest.fixture
def server(fanout: Launcher) -> Server:
    return fanout.serve(workers=1)


def test_swagger_ui_renders_with_no_internet(offline: Offline, server: Server) -> None:
    offline.page.goto(f"{server.url}/docs")

    title = offline.page.locator(".swagger-ui .info .title")
    expect(title).to_contain_text("fanout", timeout=30_000)
    expect(offline.page.locator(".opblock-summary-path", has_text="/jobs").first).to_be_visible()
    expect(offline.page.locator("button.authorize")).to_be_visible()  # the Bearer scheme
    assert (offline.refused, offline.errors) == ([], [])


def test_redoc_renders_with_no_internet(offline: Offline, server: Server) -> None:
    offline.page.goto(f"{server.url}/redoc")

    # ReDoc parses the whole document before it shows anything: slow on a busy machine.
    expect(offline.page.locator("h1", has_text="fanout")).to_be_visible(timeout=30_000)
    expect(offline.page.get_by_text("/jobs/{job_id}/results").first).to_be_attached()
    assert (offline.refused, offline.errors) == ([], [])
