"""Stampede as a user gets it: the wheel built from pyproject.toml, installed in a fresh virtual environment
outside the checkout, runs a user's own suite there (and fails it where a twin run seeds a bug).

Nothing of the checkout is on that environment's path: no PYTHONPATH, no ``.pth`` to ``libraries/``, the
suite in a folder of its own. What the suite imports (the libraries, ``stampede_robot/resources/...``) and
what it starts (the embedded servers, ``python -m reference_agent_service``) comes from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import stampede

from .conftest import (
    ROBOT_DIR,
    ROOT,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    assert_passed,
    run_robot,
)

pytestmark = pytest.mark.embedded_only  # the suite's services are the embedded ones its wheel brings

SUITE = ROBOT_DIR / "installed" / "concurrency_smoke.robot"
KEYWORD_LIBRARIES = ["ConcurrentAgents", "LockConflicts", "MetricsThresholds", "TestServices"]
MODULES = ["stampede", "stampede_robot", *KEYWORD_LIBRARIES, "reference_agent_service", "reference_mcp_server"]
RESOURCE_LINE = "stampede_robot/resources/stampede.resource"  # what README tells a user to write
BUILD_TIMEOUT = 120.0
INSTALL_TIMEOUT = 300.0
# The twin run: one seeded bug per test, each caught by that test's check.
BUGS = {"STRATEGY": "naive", "LOCK": "broken", "AGENT_BUGS": "leak"}
EXPECTED_FAILURES = {
    "Concurrent Deductions Lose No Update": [r"^Lost updates: expected 0, found [1-9]\d*\."],
    "The Lock Is Never Granted Twice": [r"^Lock granted twice: [1-9]\d* times lock 'guard'"],
    "Each User Sees Only Its Own Agent's Events": [r"^Messages reached the wrong user: [1-9]\d* of \d+ messages"],
}
NOT_IN_A_WHEEL = {"tests", "results", "histories", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
NOT_IN_A_WHEEL |= {"output.xml", "log.html", "report.html"}


@dataclass(frozen=True)
class Installation:
    """The wheel, the fresh environment it was installed into, and an empty project folder beside it."""

    wheel: Path
    python: Path
    project: Path
    results: Path
    environment: Mapping[str, str]


def _run(argv: Sequence[str | Path], timeout: float, environment: Mapping[str, str]) -> str:
    done = subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(environment),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    # Not under pytest's tmp_path, whose folders only their owner may enter: run by root, the embedded
    # PostgreSQL runs as 'nobody', who must reach its binaries inside the environment. Removed afterwards;
    # the robot outputs stay in tmp_path to read.
    base = Path(tempfile.mkdtemp(prefix="stampede-installed-"))
    base.chmod(0o755)
    try:
        yield _install(base, tmp_path_factory.mktemp("installed_results"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _install(base: Path, results: Path) -> Installation:
    assert not base.resolve().is_relative_to(ROOT), f"{base} is inside the checkout"
    # The user's environment: none of this process's import path (PYTHONPATH puts libraries/ on it here).
    environment = {name: value for name, value in os.environ.items() if name not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", base / "dist", ROOT],
        BUILD_TIMEOUT,
        environment,
    )
    (wheel,) = (base / "dist").glob("robotframework_stampede-*.whl")
    _run([sys.executable, "-m", "venv", base / "venv"], BUILD_TIMEOUT, environment)
    python = base / "venv" / "bin" / "python"
    # The checkout's exact pins as constraints: the wheel's ranges must admit them, and the run is the tested one.
    pip_install = [python, "-m", "pip", "install", "--no-compile", "--constraint", ROOT / "requirements.txt", wheel]
    _run(pip_install, INSTALL_TIMEOUT, environment)
    project = base / "project"
    project.mkdir()
    shutil.copy(SUITE, project / SUITE.name)
    return Installation(wheel, python, project, results, environment)


@pytest.fixture(scope="module")
def sound_run(installation: Installation) -> RobotRun:
    return _run_suite(installation, "sound", {})


@pytest.fixture(scope="module")
def twin_run(installation: Installation) -> RobotRun:
    return _run_suite(installation, "twin", BUGS)


def _run_suite(installation: Installation, name: str, variables: Mapping[str, str]) -> RobotRun:
    return run_robot(
        installation.results / name,
        SUITE.name,
        variables=variables,
        python=installation.python,
        cwd=installation.project,
        environment=installation.environment,
    )


def test_the_wheel_holds_every_file_under_libraries_and_nothing_else(installation: Installation) -> None:
    """Found, not listed: a module or resource added under libraries/ is packaged; tests, results, caches never."""
    with zipfile.ZipFile(installation.wheel) as wheel:
        names = wheel.namelist()
    payload = {name for name in names if not name.split("/")[0].endswith(".dist-info")}
    # What git keeps or would keep (tracked, or new and not ignored) under libraries/, as the build sees it.
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "libraries"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split("\0")  # fmt: skip
    on_disk = {Path(name).relative_to("libraries").as_posix() for name in listed if name and (ROOT / name).is_file()}
    assert payload == on_disk, f"only in the wheel: {payload - on_disk}; missing: {on_disk - payload}"
    unwanted = [name for name in names if NOT_IN_A_WHEEL & set(name.split("/")) or name.endswith((".pyc", ".jsonl"))]
    assert not unwanted, f"the wheel holds {unwanted}"
    resources = {name for name in payload if name.endswith(".resource")}
    assert RESOURCE_LINE in resources, sorted(resources)


def test_each_package_imports_under_its_own_name_from_the_environment(installation: Installation) -> None:
    """The modules, the Resource line of README (resolved as Robot does, from the project) and the version."""
    script = (
        "import importlib, importlib.metadata, json, sys\n"
        "from robot.libdoc import LibraryDocumentation\n"
        "from robot.utils import find_file\n"
        "print(json.dumps({\n"
        f"    'files': {{name: importlib.import_module(name).__file__ for name in {MODULES!r}}},\n"
        f"    'resource': find_file({RESOURCE_LINE!r}, {str(installation.project)!r}, 'Resource file'),\n"
        "    'path': sys.path,\n"
        "    'version': importlib.import_module('stampede').__version__,\n"
        "    'distribution': importlib.metadata.version('robotframework-stampede'),\n"
        f"    'libraries': {{name: LibraryDocumentation(name).version for name in {KEYWORD_LIBRARIES!r}}},\n"
        "}))\n"
    )
    found = json.loads(_run([installation.python, "-c", script], 60, installation.environment))
    venv = installation.python.parent.parent.resolve()
    files = {**found["files"], RESOURCE_LINE: found["resource"]}
    outside = {name: file for name, file in files.items() if not Path(file).resolve().is_relative_to(venv)}
    assert not outside, f"found outside the environment {venv}: {outside}"
    assert not [entry for entry in found["path"] if entry and Path(entry).resolve().is_relative_to(ROOT)]
    assert found["version"] == found["distribution"] == stampede.__version__
    assert found["libraries"] == dict.fromkeys(KEYWORD_LIBRARIES, stampede.__version__)


def test_the_reference_service_runs_as_python_m_from_the_wheel(installation: Installation) -> None:
    described = _run([installation.python, "-m", "reference_agent_service", "--describe"], 60, installation.environment)
    assert {"leak", "lost_update"} <= set(json.loads(described)["bugs"])


def test_the_reference_mcp_server_runs_as_python_m_from_the_wheel(installation: Installation) -> None:
    described = _run([installation.python, "-m", "reference_mcp_server", "--describe"], 60, installation.environment)
    assert {"lost_update", "crossed_replies", "never_reap"} <= set(json.loads(described)["bugs"])


def test_the_users_suite_passes_on_the_installed_package(sound_run: RobotRun) -> None:
    assert sound_run.returncode == 0, sound_run.console
    assert_passed(sound_run, *EXPECTED_FAILURES)
    assert_nothing_left_behind(sound_run)


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_its_twin_with_a_seeded_bug_fails_in_the_check(twin_run: RobotRun, name: str) -> None:
    assert_failed_with(twin_run, name, *EXPECTED_FAILURES[name])


def test_the_twin_leaves_nothing_behind(twin_run: RobotRun) -> None:
    assert twin_run.returncode == len(EXPECTED_FAILURES), twin_run.console
    assert_nothing_left_behind(twin_run)
