"""A real browser opens log.html and report.html of a real run: they render, charts included, without JavaScript errors.

Playwright drives headless Chromium: Debian's ``chromium`` executable
(installed here when missing and possible) given as ``executable_path``, so
Playwright's own browser download (``playwright install``) is never needed.
Screenshots go to ``results/screenshots/``. Every wait is bounded, and no
Chromium or Playwright driver process may outlive a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import playwright
import psutil
import pytest
from playwright.async_api import ConsoleMessage, Error, FloatRect, Page, async_playwright, expect

from .conftest import ROOT, RobotRun, assert_nothing_left_behind, log_html_strings, run_robot

pytestmark = pytest.mark.embedded_only  # how the pages render does not depend on whose services the run used

SUITE = "suites/tool_conflicts/09__sql_defined_tools.robot"
SCREENSHOTS = ROOT / "results" / "screenshots"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
PLAYWRIGHT_DRIVER = Path(playwright.__file__).resolve().parent / "driver"  # as /proc shows executables
INSTALL_TIMEOUT = 600.0
START_TIMEOUT = 30.0
RENDER_TIMEOUT = 30.0
PAGE_TIMEOUT = 120.0
WINDOW = (1400, 1000)
MAX_SCREENSHOT_HEIGHT = 8000
INLINE_CHARTS = ".message svg, td svg"
HEADER_CHARTS = "img[src^='data:image/svg+xml']"


# --------------------------------------------------------------------------- finding Chromium


def _installed_chromium() -> str | None:
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def chromium_or_skip() -> str:
    """Chromium's path, installing Debian's package first when it is missing and this machine can.

    Without Chromium the browser tests are skipped, except in CI (``CI=true``), where they must run.
    """
    found = _installed_chromium()
    if found:
        return found
    if not shutil.which("apt-get"):
        _unavailable("Chromium is not installed and cannot be installed here: no apt-get (install 'chromium').")
    if os.geteuid() != 0:
        _unavailable("Chromium is not installed and cannot be installed here: apt-get needs root (install 'chromium').")
    install = _apt("install", "-y", "--no-install-recommends", "chromium")
    if install.returncode != 0:  # the package lists may be missing or stale
        _apt("update")
        install = _apt("install", "-y", "--no-install-recommends", "chromium")
    output = (install.stdout + install.stderr).strip()
    found = _installed_chromium()
    if not found:
        last_lines = "\n".join(output.splitlines()[-5:])
        _unavailable(f"Chromium is not installed and apt-get could not install it:\n{last_lines}")
    return found


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    command = ["apt-get", *args]
    try:
        return subprocess.run(
            command, check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        _unavailable(f"Chromium could not be installed: '{' '.join(command)}' ran over {INSTALL_TIMEOUT:g} s.")


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"CI runs the browser tests, but: {reason}")
    pytest.skip(reason)


# --------------------------------------------------------------------------- driving it


@dataclass
class Tab:
    """One page of a headless Chromium, with the JavaScript errors it reported since it opened."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.set_default_timeout(RENDER_TIMEOUT * 1000)
        self.page.on("pageerror", self._uncaught)
        self.page.on("console", self._console)

    def _uncaught(self, error: Error) -> None:
        self.errors.append(f"{error.name}: {error.message}")

    def _console(self, message: ConsoleMessage) -> None:
        # The browser's own log entries at level error (a resource that failed to load) come here too.
        if message.type in {"error", "assert"}:
            self.errors.append(message.text)

    async def open(self, path: Path, fragment: str = "") -> None:
        await self.page.goto(path.as_uri() + (f"#{fragment}" if fragment else ""), wait_until="load")

    async def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        clip = FloatRect(x=0, y=0, width=WINDOW[0], height=MAX_SCREENSHOT_HEIGHT)  # Playwright trims it to the page
        await self.page.screenshot(path=path, full_page=True, clip=clip)
        return path


@contextlib.asynccontextmanager
async def headless_chromium(executable: str) -> AsyncIterator[Tab]:
    """A headless Chromium with one page; closed on exit, Playwright's driver with it."""
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=executable, timeout=START_TIMEOUT * 1000)
        try:
            yield Tab(await browser.new_page(viewport={"width": WINDOW[0], "height": WINDOW[1]}))
        finally:
            await browser.close()


def browser_processes() -> set[int]:
    """Live Chromium processes and Playwright driver processes on this machine."""
    found = set()
    for process in psutil.process_iter(["name", "exe", "status"]):
        is_driver = (process.info["exe"] or "").startswith(str(PLAYWRIGHT_DRIVER))
        is_chromium = "chrom" in (process.info["name"] or "")
        if (is_chromium or is_driver) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.add(process.pid)
    return found


def assert_no_browser_left(before: set[int]) -> None:
    deadline = time.monotonic() + 10
    while (left := browser_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Chromium or Playwright processes left behind: {sorted(left)}"


# --------------------------------------------------------------------------- the checks


@dataclass
class Rendered:
    caption_texts: list[str]
    charts_shown: int
    text: str
    errors: list[str]
    screenshot: Path


@dataclass(frozen=True)
class Charts:
    """How many charts a log.html carries: inline SVG in keyword messages, SVG images in test headers."""

    inline: int
    header: int

    @classmethod
    def carried_by(cls, log: Path) -> Charts:
        texts = log_html_strings(log)
        return cls(
            inline=sum(text.count("<svg") for text in texts),
            header=sum(text.count("data:image/svg+xml") for text in texts),
        )


@pytest.fixture(scope="module")
def robot_run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("browser"), SUITE, variables={"AGENTS": "20"})


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


async def _render_log(executable: str, log: Path, carried: Charts) -> Rendered:
    async with headless_chromium(executable) as tab:
        page, wait = tab.page, RENDER_TIMEOUT * 1000
        await tab.open(log)
        await page.wait_for_function("typeof window.testdata !== 'undefined' && !!document.getElementById('s1')")
        await page.evaluate("expandAll('s1')")
        # Expanding runs in queued steps: wait until every chart the log carries is in the page.
        await expect(page.locator("caption", has_text="Launch").first).to_be_visible(timeout=wait)
        await expect(page.locator(INLINE_CHARTS)).to_have_count(carried.inline, timeout=wait)
        await expect(page.locator(HEADER_CHARTS)).to_have_count(carried.header, timeout=wait)
        images_decoded = f"[...document.querySelectorAll({HEADER_CHARTS!r})].every(i => i.complete)"
        await page.wait_for_function(images_decoded)
        return Rendered(
            caption_texts=await page.locator("caption").all_text_contents(),
            charts_shown=await _charts_shown(page),
            text=await page.inner_text("body"),
            errors=tab.errors,
            screenshot=await tab.screenshot(SCREENSHOTS / "log.png"),
        )


async def _charts_shown(page: Page) -> int:
    """Charts with a size on screen; a header image counts only once its SVG decoded to a picture."""
    shown = 0
    for chart in await page.locator(INLINE_CHARTS).all():
        shown += await chart.is_visible()
    for image in await page.locator(HEADER_CHARTS).all():
        shown += await image.is_visible() and await image.evaluate("i => i.naturalWidth > 0")
    return shown


async def _render_report(executable: str, report: Path) -> Rendered:
    async with headless_chromium(executable) as tab:
        await tab.open(report, "totals?All%20Tests")  # the details of all tests, as clicking "All" shows
        await tab.page.wait_for_selector("#test-details")
        return Rendered(
            caption_texts=[],
            charts_shown=0,
            text=await tab.page.inner_text("body"),
            errors=tab.errors,
            screenshot=await tab.screenshot(SCREENSHOTS / "report.png"),
        )


def test_log_html_renders_the_launch_table_and_charts_without_javascript_errors(
    robot_run: RobotRun, chromium: str
) -> None:
    log = robot_run.output_dir / "log.html"
    carried = Charts.carried_by(log)
    before = browser_processes()

    rendered = asyncio.run(asyncio.wait_for(_render_log(chromium, log, carried), PAGE_TIMEOUT))

    assert_no_browser_left(before)
    assert rendered.errors == [], f"JavaScript errors in log.html: {rendered.errors}"
    assert any(text.startswith("Launch 1: reserve seat") for text in rendered.caption_texts), rendered.caption_texts
    assert "Agents Reserve Seats Without Double Booking" in rendered.text
    assert rendered.screenshot.stat().st_size > 10_000, f"{rendered.screenshot} looks empty"
    if carried.inline + carried.header == 0:
        pytest.skip(f"log.html rendered (screenshot {rendered.screenshot}), but this run logged no SVG chart to count.")
    assert rendered.charts_shown == carried.inline + carried.header, (
        f"log.html carries {carried}; shown: {rendered.charts_shown}"
    )


def test_report_html_renders_the_statistics_without_javascript_errors(robot_run: RobotRun, chromium: str) -> None:
    before = browser_processes()

    rendered = asyncio.run(
        asyncio.wait_for(_render_report(chromium, robot_run.output_dir / "report.html"), PAGE_TIMEOUT)
    )

    assert_no_browser_left(before)
    assert rendered.errors == [], f"JavaScript errors in report.html: {rendered.errors}"
    assert "Agents Reserve Seats Without Double Booking" in rendered.text
    assert rendered.screenshot.stat().st_size > 10_000, f"{rendered.screenshot} looks empty"


def test_a_page_with_a_javascript_error_is_caught(chromium: str, tmp_path: Path) -> None:
    page_with_bug = tmp_path / "broken.html"
    page_with_bug.write_text("<html><body><svg></svg><script>drawChart(undefinedData);</script></body></html>")
    before = browser_processes()

    async def errors_of(path: Path) -> list[str]:
        async with headless_chromium(chromium) as tab:
            await tab.open(path)
            return tab.errors

    errors = asyncio.run(asyncio.wait_for(errors_of(page_with_bug), PAGE_TIMEOUT))

    assert_no_browser_left(before)
    assert len(errors) == 1 and "drawChart is not defined" in errors[0], errors


def test_the_run_passed_and_left_nothing_behind(robot_run: RobotRun) -> None:
    assert robot_run.returncode == 0, robot_run.console
    assert_nothing_left_behind(robot_run)
