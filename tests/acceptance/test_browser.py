"""A real browser opens log.html and report.html of a real run: they render, charts included, without JavaScript errors.

Headless Chromium (Debian's ``chromium`` package, installed here when missing
and possible) is driven over the Chrome DevTools Protocol with the
``websockets`` package. Screenshots go to ``results/screenshots/``. Every wait
is bounded, and the browser's whole process group is killed at the end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import websockets

from .conftest import ROOT, RobotRun, assert_nothing_left_behind, log_html_strings, run_robot

SUITE = "suites/tool_conflicts/09__sql_defined_tools.robot"
SCREENSHOTS = ROOT / "results" / "screenshots"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
INSTALL_TIMEOUT = 600.0
START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0
RENDER_TIMEOUT = 30.0
WINDOW = (1400, 1000)
MAX_SCREENSHOT_HEIGHT = 8000


# --------------------------------------------------------------------------- finding Chromium


def _installed_chromium() -> str | None:
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def chromium_or_skip() -> str:
    """Chromium's path, installing Debian's package first when it is missing and this machine can."""
    found = _installed_chromium()
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and cannot be installed here: no apt-get (install 'chromium').")
    if os.geteuid() != 0:
        pytest.skip("Chromium is not installed and cannot be installed here: apt-get needs root (install 'chromium').")
    install = _apt("install", "-y", "--no-install-recommends", "chromium")
    if install.returncode != 0:  # the package lists may be missing or stale
        _apt("update")
        install = _apt("install", "-y", "--no-install-recommends", "chromium")
    output = (install.stdout + install.stderr).strip()
    found = _installed_chromium()
    if not found:
        last_lines = "\n".join(output.splitlines()[-5:])
        pytest.skip(f"Chromium is not installed and apt-get could not install it:\n{last_lines}")
    return found


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    command = ["apt-get", *args]
    try:
        return subprocess.run(
            command, check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.skip(f"Chromium could not be installed: '{' '.join(command)}' ran over {INSTALL_TIMEOUT:g} s.")


# --------------------------------------------------------------------------- driving it


@dataclass
class Page:
    """One tab, attached over the browser's DevTools socket; collects the page's errors as they come."""

    socket: Any
    session: str
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    new_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        answer = self.waiting[message_id] = asyncio.get_running_loop().create_future()
        await self.socket.send(
            json.dumps({"id": message_id, "method": method, "params": params, "sessionId": self.session})
        )
        reply = await asyncio.wait_for(answer, COMMAND_TIMEOUT)
        if "error" in reply:
            raise AssertionError(f"DevTools {method} failed: {reply['error']}")
        return reply.get("result", {})

    def dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message and message["id"] in self.waiting:
            self.waiting.pop(message["id"]).set_result(message)
        elif message.get("sessionId") == self.session:
            self.events.append(message)
            self.new_event.set()

    async def wait_for_event(self, method: str) -> None:
        async with asyncio.timeout(RENDER_TIMEOUT):
            while not any(event["method"] == method for event in self.events):
                self.new_event.clear()
                await self.new_event.wait()

    async def evaluate(self, expression: str) -> Any:
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression!r} threw: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_until(self, expression: str, what: str) -> None:
        deadline = time.monotonic() + RENDER_TIMEOUT
        while not await self.evaluate(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not happen within {RENDER_TIMEOUT:g} s")
            await asyncio.sleep(0.2)

    def javascript_errors(self) -> list[str]:
        errors = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in {"error", "assert"}:
                errors.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
        return errors

    async def open(self, path: Path, fragment: str = "") -> None:
        self.events.clear()
        await self.send("Page.navigate", url=path.as_uri() + (f"#{fragment}" if fragment else ""))
        await self.wait_for_event("Page.loadEventFired")

    async def screenshot(self, path: Path) -> Path:
        size = (await self.send("Page.getLayoutMetrics"))["cssContentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": size["width"],
            "height": min(size["height"], MAX_SCREENSHOT_HEIGHT),
            "scale": 1,
        }
        shot = await self.send("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextlib.asynccontextmanager
async def headless_chromium(executable: str) -> AsyncIterator[Page]:
    """A headless Chromium with one page; on exit its process group is killed and its profile removed."""
    profile = Path(tempfile.mkdtemp(prefix="stampede-chromium-"))
    argv = [
        executable, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}",
        "--no-sandbox",  # Chromium's sandbox refuses to run as root, as this test may
        "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", "about:blank",
    ]  # fmt: skip
    log = (profile.parent / f"{profile.name}.log").open("wb")
    browser = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        port, path = await _devtools_address(profile, browser)
        async with websockets.connect(
            f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=START_TIMEOUT
        ) as socket:
            page = Page(socket, session="")
            reader = asyncio.create_task(_read(socket, page))
            try:
                target = (await page.send("Target.createTarget", url="about:blank"))["targetId"]
                page.session = (await page.send("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
                for domain in ("Page", "Runtime", "Log"):
                    await page.send(f"{domain}.enable")
                yield page
            finally:
                with contextlib.suppress(Exception):  # a broken socket: the process group is killed below
                    await asyncio.wait_for(socket.send(json.dumps({"id": 0, "method": "Browser.close"})), 5)
                reader.cancel()
    finally:
        _stop_browser(browser)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)
        (profile.parent / f"{profile.name}.log").unlink(missing_ok=True)


async def _devtools_address(profile: Path, browser: subprocess.Popen[bytes]) -> tuple[str, str]:
    active_port = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if browser.poll() is not None:
            raise AssertionError(f"Chromium exited with {browser.returncode} before opening its DevTools port")
        lines = active_port.read_text().split("\n") if active_port.exists() else []
        if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
            return lines[0].strip(), lines[1].strip()
        await asyncio.sleep(0.1)
    raise AssertionError(f"Chromium did not open its DevTools port within {START_TIMEOUT:g} s")


async def _read(socket: Any, page: Page) -> None:
    async for raw in socket:
        page.dispatch(json.loads(raw))


def _stop_browser(browser: subprocess.Popen[bytes]) -> None:
    """Let Chromium end after Browser.close (it reaps its own helpers), then kill whatever is left of its group."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        browser.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(browser.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        browser.wait(timeout=10)


def chromium_processes() -> set[int]:
    found = set()
    for process in psutil.process_iter(["name"]):
        if "chrom" in (process.info["name"] or "") and process.status() != psutil.STATUS_ZOMBIE:
            found.add(process.pid)
    return found


def assert_no_chromium_left(before: set[int]) -> None:
    deadline = time.monotonic() + 10
    while (left := chromium_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Chromium processes left behind: {sorted(left)}"


# --------------------------------------------------------------------------- the checks


@dataclass
class Rendered:
    caption_texts: list[str]
    charts: int
    text: str
    errors: list[str]
    screenshot: Path


@pytest.fixture(scope="module")
def robot_run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("browser"), SUITE, variables={"AGENTS": "20"})


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


async def _render_log(executable: str, log: Path) -> Rendered:
    async with headless_chromium(executable) as page:
        await page.open(log)
        await page.wait_until("typeof window.testdata !== 'undefined' && !!document.getElementById('s1')", "the log")
        await page.evaluate("expandAll('s1')")
        await page.wait_until(
            "[...document.querySelectorAll('caption')].some(c => c.textContent.includes('Launch'))",
            "the launch summary table showing once every keyword is expanded",
        )
        await asyncio.sleep(0.5)  # let expansion finish its queued steps before counting
        return Rendered(
            caption_texts=await page.evaluate("[...document.querySelectorAll('caption')].map(c => c.textContent)"),
            charts=await page.evaluate("document.querySelectorAll('.message svg, td svg').length"),
            text=await page.evaluate("document.body.innerText"),
            errors=page.javascript_errors(),
            screenshot=await page.screenshot(SCREENSHOTS / "log.png"),
        )


async def _render_report(executable: str, report: Path) -> Rendered:
    async with headless_chromium(executable) as page:
        await page.open(report, "totals?All%20Tests")  # the details of all tests, as clicking "All" shows
        await page.wait_until("!!document.querySelector('#test-details')", "the report's table of all tests")
        return Rendered(
            caption_texts=[],
            charts=0,
            text=await page.evaluate("document.body.innerText"),
            errors=page.javascript_errors(),
            screenshot=await page.screenshot(SCREENSHOTS / "report.png"),
        )


def test_log_html_renders_the_launch_table_and_charts_without_javascript_errors(
    robot_run: RobotRun, chromium: str
) -> None:
    log = robot_run.output_dir / "log.html"
    before = chromium_processes()

    rendered = asyncio.run(asyncio.wait_for(_render_log(chromium, log), 120))

    assert_no_chromium_left(before)
    assert rendered.errors == [], f"JavaScript errors in log.html: {rendered.errors}"
    assert any(text.startswith("Launch 1: reserve seat") for text in rendered.caption_texts), rendered.caption_texts
    assert "Agents Reserve Seats Without Double Booking" in rendered.text
    assert rendered.screenshot.stat().st_size > 10_000, f"{rendered.screenshot} looks empty"
    if not any("<svg" in text for text in log_html_strings(log)):
        pytest.skip(f"log.html rendered (screenshot {rendered.screenshot}), but this run logged no SVG chart to count.")
    assert rendered.charts > 0, "log.html carries SVG charts, but none rendered"


def test_report_html_renders_the_statistics_without_javascript_errors(robot_run: RobotRun, chromium: str) -> None:
    before = chromium_processes()

    rendered = asyncio.run(asyncio.wait_for(_render_report(chromium, robot_run.output_dir / "report.html"), 120))

    assert_no_chromium_left(before)
    assert rendered.errors == [], f"JavaScript errors in report.html: {rendered.errors}"
    assert "Agents Reserve Seats Without Double Booking" in rendered.text
    assert rendered.screenshot.stat().st_size > 10_000, f"{rendered.screenshot} looks empty"


def test_a_page_with_a_javascript_error_is_caught(chromium: str, tmp_path: Path) -> None:
    page_with_bug = tmp_path / "broken.html"
    page_with_bug.write_text("<html><body><svg></svg><script>drawChart(undefinedData);</script></body></html>")

    async def errors_of(path: Path) -> list[str]:
        async with headless_chromium(chromium) as page:
            await page.open(path)
            return page.javascript_errors()

    errors = asyncio.run(asyncio.wait_for(errors_of(page_with_bug), 60))

    assert len(errors) == 1 and "drawChart is not defined" in errors[0], errors


def test_the_run_passed_and_left_nothing_behind(robot_run: RobotRun) -> None:
    assert robot_run.returncode == 0, robot_run.console
    assert_nothing_left_behind(robot_run)
