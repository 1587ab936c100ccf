"""Acceptance tests: run the real ``robot`` on real suites and read the verdicts it wrote.

One helper, :func:`run_robot`, runs ``python -m robot`` in a subprocess (from the
repository root, bounded by a timeout) and returns a :class:`RobotRun`: the parsed
``output.xml``, the exit code, and what the run left behind (server processes, their
temp dirs, and, against external services, schemas, backends and Redis keys).

Each run gets its own run id (``STAMPEDE_RUN_ID``), and on shared services only
what carries that id counts as its leftovers: another run of the tests against
the same PostgreSQL or Redis is not this run's mess.

The subprocess inherits the environment, so with ``STAMPEDE_PG_DSN`` /
``STAMPEDE_REDIS_URL`` set the suites run against those services instead of the
embedded ones.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis
from robot.api import ExecutionResult, ResultVisitor
from robot.result import Keyword, Message, Result, TestCase, TestSuite

from stampede.services.config import RUN_ID_ENV

ROOT = Path(__file__).resolve().parents[2]
ROBOT_DIR = Path(__file__).resolve().parent / "robot"
ROBOT_TIMEOUT = 300.0
SHUTDOWN_GRACE = 5.0
STOP_GRACE = 20.0
SERVER_NAMES = frozenset({"postgres", "redis-server"})
TEMP_DIR_PATTERN = re.compile(r"(/\S*?/stampede-(?:pg|redis)-[^/\s]+)")
CHECK_APPLICATION_NAME = "acceptance-leftover-check"  # must not match 'stampede-%'
# log.html writes "</" as \x3c/ (a JavaScript escape JSON lacks); the lookbehind skips escaped backslashes.
_JS_LT = re.compile(r"(?<!\\)((?:\\\\)*)\\x3c")
_LOG_STRINGS = re.compile(r'^window\.output\["strings"\] = window\.output\["strings"\]\.concat\((.*)\);$', re.M)


# --------------------------------------------------------------------------- reading results


class _Collector(ResultVisitor):
    def __init__(self) -> None:
        self.keywords: list[Keyword] = []
        self.messages: list[Message] = []

    def start_keyword(self, keyword: Keyword) -> bool | None:
        self.keywords.append(keyword)
        return None

    def visit_message(self, message: Message) -> None:
        self.messages.append(message)


def _collect(item: TestSuite | TestCase | Keyword) -> _Collector:
    collector = _Collector()
    item.visit(collector)
    return collector


def keywords_in(item: TestSuite | TestCase | Keyword) -> list[Keyword]:
    """Every keyword run under ``item`` (setups, bodies, teardowns, nested ones), in order."""
    return _collect(item).keywords


def messages_in(item: TestSuite | TestCase | Keyword) -> list[Message]:
    """Every log message under ``item``, in order."""
    return _collect(item).messages


def logged(run: RobotRun, test: str, pattern: str) -> list[re.Match[str]]:
    """Matches of ``pattern`` in the plain-text messages logged in ``test`` of ``run``, in order."""
    return [match for m in messages_in(run.test(test)) if not m.html and (match := re.search(pattern, m.message))]


def log_html_strings(log: Path) -> list[str]:
    """The texts log.html carries, decompressed: log.html stores long ones zlib-compressed and base64-encoded.

    A plain search of log.html would miss a compressed message, so checks for
    what the log says (or must never say) search these.
    """
    texts: list[str] = []
    for chunk in _LOG_STRINGS.findall(log.read_text(encoding="utf-8")):
        for encoded in json.loads(_JS_LT.sub(r"\1\\u003c", chunk)):
            if encoded.startswith("*"):
                texts.append(encoded[1:])
            elif encoded:
                texts.append(zlib.decompress(base64.b64decode(encoded)).decode("utf-8"))
    return texts


@dataclass
class RobotRun:
    """One finished ``robot`` run: its verdicts, exit code, output and what it left behind."""

    result: Result
    returncode: int
    output_dir: Path
    console: str
    leftovers: list[str]
    seconds: float

    @property
    def suite(self) -> TestSuite:
        return self.result.suite

    @property
    def tests(self) -> dict[str, TestCase]:
        return {test.name: test for test in self.suite.all_tests}

    def test(self, name: str) -> TestCase:
        tests = self.tests
        assert name in tests, f"no test named {name!r}; the run has: {sorted(tests)}"
        return tests[name]

    def child_suite(self, name: str) -> TestSuite:
        found = [suite for suite in self._all_suites(self.suite) if suite.name == name]
        assert found, f"no suite named {name!r} in the run"
        return found[0]

    def _all_suites(self, suite: TestSuite) -> Iterator[TestSuite]:
        yield suite
        for child in suite.suites:
            yield from self._all_suites(child)

    def output_texts(self) -> dict[str, str]:
        """Everything the run wrote that a reader sees: files by name, log.html decoded."""
        texts = {
            path.name: path.read_text(encoding="utf-8", errors="replace")
            for path in (self.output_dir / name for name in ("output.xml", "log.html", "report.html", "console.txt"))
            if path.exists()
        }
        log = self.output_dir / "log.html"
        if log.exists():
            texts["log.html (decoded strings)"] = "\n".join(log_html_strings(log))
        return texts


def assert_nowhere_in_outputs(run: RobotRun, secret: str) -> None:
    """Fail naming every output file that contains ``secret``."""
    found = [name for name, text in run.output_texts().items() if secret in text]
    assert not found, f"{secret!r} appears in {found}"


def assert_nothing_left_behind(run: RobotRun) -> None:
    assert not run.leftovers, "the robot run left behind:\n" + "\n".join(run.leftovers)


def assert_passed(run: RobotRun, *names: str) -> None:
    """Every test in ``names`` ran and passed."""
    failed = {
        name: f"{run.test(name).status}: {run.test(name).message}" for name in names if run.test(name).status != "PASS"
    }
    assert not failed, failed


def assert_failed_with(run: RobotRun, name: str, *patterns: str) -> None:
    """Test ``name`` failed with a message matching every regex in ``patterns``, and only its last step failed.

    So a seeded bug is reported by the checker that should catch it, not by a
    launch that could not run or a set-up that broke.
    """
    test = run.test(name)
    assert test.status == "FAIL", f"{name} should fail but {test.status}: {test.message}"
    for pattern in patterns:
        assert re.search(pattern, test.message), f"{pattern!r} not in the message of {name!r}: {test.message}"
    steps = test.body.filter(messages=False)
    statuses = [f"{getattr(step, 'name', step.type)}: {step.status}" for step in steps]
    assert steps and steps[-1].status == "FAIL" and all(step.status == "PASS" for step in steps[:-1]), (
        f"{name}: only the last step should fail, got {statuses}"
    )


# --------------------------------------------------------------------------- leftovers


@dataclass(frozen=True)
class ServerProc:
    """A server process, told apart from a later one with the same pid by its start time."""

    pid: int
    created: float
    cmdline: str
    cwd: str  # redis-server rewrites its title; both servers chdir into their (temp) data dir

    @classmethod
    def of(cls, process: psutil.Process) -> ServerProc:
        try:
            cwd = process.cwd()
        except psutil.Error:
            cwd = ""
        return cls(process.pid, process.create_time(), " ".join(process.cmdline()), cwd)

    def alive(self) -> bool:
        try:
            return psutil.Process(self.pid).create_time() == self.created
        except psutil.Error:
            return False


def _server_processes() -> dict[tuple[int, float], ServerProc]:
    found: dict[tuple[int, float], ServerProc] = {}
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] in SERVER_NAMES:
                proc = ServerProc.of(process)
                found[(proc.pid, proc.created)] = proc
        except psutil.Error:
            continue
    return found


def _descendant_servers(root: psutil.Process) -> list[ServerProc]:
    try:
        children = root.children(recursive=True)
    except psutil.Error:
        return []
    servers = []
    for child in children:
        try:
            if child.name() in SERVER_NAMES:
                servers.append(ServerProc.of(child))
        except psutil.Error:
            continue
    return servers


def _orphaned(proc: ServerProc) -> bool:
    """A server whose parent is gone (re-parented to init): nobody will stop it."""
    try:
        parent = psutil.Process(proc.pid).parent()
    except psutil.Error:
        return False
    return parent is None or parent.pid == 1


@dataclass
class Snapshot:
    """What existed before a run: server processes and, on external services, the run's schemas, backends and keys."""

    servers: dict[tuple[int, float], ServerProc]
    run_id: str = ""
    schemas: set[str] = field(default_factory=set)
    applications: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)


def new_run_id() -> str:
    """A run id of the form Stampede makes, marked as the acceptance tests' own."""
    return f"at{secrets.token_hex(4)}"


async def _postgres_state(dsn: str, run_id: str) -> tuple[set[str], set[str]]:
    """The run's schemas (``stampede_<run id>...``) and the names of backends that carry its id."""
    connection = await asyncpg.connect(dsn, timeout=10, server_settings={"application_name": CHECK_APPLICATION_NAME})
    try:
        schemas = {
            row[0]
            for row in await connection.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $1 || '\\_%'",
                f"stampede_{run_id}",
            )
        }
        applications = {
            row[0]
            for row in await connection.fetch(
                "SELECT DISTINCT application_name FROM pg_stat_activity WHERE strpos(application_name, $1) > 0",
                run_id,
            )
        }
    finally:
        await connection.close()
    return schemas, applications


def _redis_keys(url: str, run_id: str) -> set[str]:
    client = redis.Redis.from_url(url, socket_timeout=10, decode_responses=True)
    try:
        # pabot's processes share the environment's id and add their own: stampede:<run id>_p<n>:...
        return set(client.scan_iter(match=f"stampede:{run_id}[:_]*", count=1000))
    finally:
        client.close()


def take_snapshot(run_id: str, with_servers: bool = True) -> Snapshot:
    """Server processes now and, on external services, what carries ``run_id``."""
    snapshot = Snapshot(_server_processes() if with_servers else {}, run_id)
    if dsn := os.environ.get("STAMPEDE_PG_DSN"):
        snapshot.schemas, snapshot.applications = asyncio.run(_postgres_state(dsn, run_id))
    if url := os.environ.get("STAMPEDE_REDIS_URL"):
        snapshot.keys = _redis_keys(url, run_id)
    return snapshot


def find_leftovers(before: Snapshot, started: list[ServerProc], grace: float = SHUTDOWN_GRACE) -> list[str]:
    """What a run left behind since ``before``, given the servers it started; waits ``grace`` s for stragglers."""
    deadline = time.monotonic() + grace
    while True:
        problems: list[str] = []
        for proc in started:
            if proc.alive():
                problems.append(f"server process {proc.pid} still runs: {proc.cmdline}")
            for temp_dir in set(TEMP_DIR_PATTERN.findall(f"{proc.cmdline} {proc.cwd}")):
                if Path(temp_dir).exists():
                    problems.append(f"temp dir {temp_dir} of server process {proc.pid} still exists")
        seen = {(proc.pid, proc.created) for proc in started}
        for key, proc in _server_processes().items():
            if key not in before.servers and key not in seen and _orphaned(proc):
                problems.append(f"orphaned server process {proc.pid} appeared during the run: {proc.cmdline}")
        after = take_snapshot(before.run_id, with_servers=False)
        problems += [f"schema {name} remains" for name in sorted(after.schemas - before.schemas)]
        problems += [
            f"a backend with application_name {name!r} remains (pg_stat_activity)"
            for name in sorted(after.applications - before.applications)
        ]
        problems += [f"Redis key {key!r} remains" for key in sorted(after.keys - before.keys)]
        if not problems or time.monotonic() >= deadline:
            return list(dict.fromkeys(problems))  # a server's backends share its temp dir
        time.sleep(0.25)


# --------------------------------------------------------------------------- running robot


class RobotTimeout(AssertionError):
    """A robot run overran its timeout; it was interrupted, and ``leftovers`` is what it left behind."""

    def __init__(self, message: str, leftovers: list[str], servers: list[ServerProc]) -> None:
        super().__init__(message)
        self.leftovers = leftovers
        self.servers = servers


def run_robot(
    output_dir: Path,
    *data: Path | str,
    variables: Mapping[str, str] | None = None,
    options: Sequence[str] = (),
    timeout: float = ROBOT_TIMEOUT,
    python: Path | str = sys.executable,
    cwd: Path = ROOT,
    environment: Mapping[str, str] | None = None,
    runner: Sequence[str] = ("robot",),
) -> RobotRun:
    """Run ``robot`` on ``data`` (paths relative to ``cwd``, by default the repository root) and return the run.

    ``python`` is the interpreter whose robot runs (this one, or a fresh virtual
    environment's), with ``environment`` (this process's unless given); ``runner`` is
    the module it runs with its options (e.g. ``("pabot.pabot", "--processes", "2")``).
    Server processes the run starts are watched while it runs; afterwards the
    run's leftovers are listed in ``RobotRun.leftovers``. A run that exceeds
    ``timeout`` is interrupted as Ctrl+C would (killed if it does not stop),
    whatever it left behind is recorded and then killed, and :class:`RobotTimeout` is raised.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(python), "-m", *runner, "--outputdir", str(output_dir), "--consolecolors", "off"]
    for name, value in (variables or {}).items():
        argv += ["--variable", f"{name}:{value}"]
    argv += [*options, *(str(path) for path in data)]
    run_id = new_run_id()
    before = take_snapshot(run_id)
    started: dict[tuple[int, float], ServerProc] = {}
    began = time.monotonic()
    console_file = output_dir / "console.txt"
    with console_file.open("wb") as console:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**(os.environ if environment is None else environment), RUN_ID_ENV: run_id},
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        watched = psutil.Process(process.pid)
        try:
            while process.poll() is None and time.monotonic() - began < timeout:
                started.update({(proc.pid, proc.created): proc for proc in _descendant_servers(watched)})
                time.sleep(0.1)
        finally:
            timed_out = _stop(process)
    seconds = time.monotonic() - began
    leftovers = find_leftovers(before, list(started.values()))
    if timed_out:
        _kill_servers(list(started.values()))
        raise RobotTimeout(
            f"robot {' '.join(map(str, data))} ran over {timeout:g} s and was interrupted; it left behind: "
            + ("; ".join(leftovers) or "nothing"),
            leftovers,
            list(started.values()),
        )
    output = output_dir / "output.xml"
    console_text = console_file.read_text(encoding="utf-8", errors="replace")
    assert output.exists(), f"robot wrote no output.xml (exit code {process.returncode}):\n{console_text}"
    return RobotRun(
        result=ExecutionResult(str(output)),
        returncode=process.returncode,
        output_dir=output_dir,
        console=console_text,
        leftovers=leftovers,
        seconds=seconds,
    )


def _stop(process: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> bool:
    """Interrupt ``process`` (its whole process group) if it still runs; return whether it had to be."""
    if process.poll() is not None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)  # Robot stops gracefully: teardowns run, output.xml is written
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    return True


def _kill_servers(servers: list[ServerProc]) -> None:
    """Kill servers a run left running (they live in sessions of their own)."""
    for proc in servers:
        if proc.alive():
            with contextlib.suppress(psutil.Error):
                psutil.Process(proc.pid).kill()


@pytest.fixture(scope="session")
def tool_conflicts_run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    """One run of the whole ``suites/tool_conflicts`` folder, shared by every test that reads it."""
    return run_robot(tmp_path_factory.mktemp("tool_conflicts"), "suites/tool_conflicts")


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just released by us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
