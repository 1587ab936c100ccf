"""Launch Agents with workers=2 from Robot: the race is caught across two worker processes, nothing is left."""

from __future__ import annotations

import pytest

from .conftest import ROBOT_DIR, RobotRun, assert_nothing_left_behind, assert_passed, run_robot

TESTS = (
    "A Read Then Write Split Over Two Workers Still Loses Updates",
    "An Atomic Update Split Over Two Workers Keeps Every Credit",
    "The Built-In Naive Deduction Split Over Two Workers Still Loses Updates",
    "A Fixed Rate Split Over Two Workers Keeps The Asked Rate",
    "An Invariant Is Sampled While A Background Launch Runs On Two Workers",
    "A Background Launch On Two Workers Is Watched And Stopped",
    "A Lock Split Over Two Workers Keeps Its Holders Apart",
    "The Broken Lock Split Over Two Workers Is Caught Granting Itself Twice",
    "WebSocket Users Split Over Two Workers Are Judged Together",
    "HTTP Users Split Over Two Workers Share Their Threads",
    "A Tool That Cannot Be Rebuilt In A Worker Is Refused",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("workers"), ROBOT_DIR / "workers.robot")


def test_the_suite_passes(run: RobotRun) -> None:
    assert_passed(run, *TESTS)
    assert run.returncode == 0, run.console


def test_each_launch_on_workers_saved_one_merged_history(run: RobotRun) -> None:
    histories = sorted((run.output_dir / "histories").glob("*.jsonl"))
    lines = [len(path.read_text(encoding="utf-8").splitlines()) for path in histories]
    # the three races, the fixed rate, the background one at a fixed rate, the two locks, WebSocket and HTTP users
    for expected in (60, 60, 60, 300, 400, 20, 36, 12, 8):
        assert expected in lines, (expected, lines)
        lines.remove(expected)
    assert len(lines) == 1 and lines[0] >= 50, f"the background launch stopped after 50 operations: {lines}"
    folders = sorted(path for path in (run.output_dir / "histories").iterdir() if path.is_dir())
    assert len(folders) == 10 and all(not list(folder.glob("shard-*")) for folder in folders), folders


def test_nothing_is_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)


def test_the_log_shows_how_together_the_shards_started(run: RobotRun) -> None:
    log = (run.output_dir / "output.xml").read_text(encoding="utf-8")
    assert "gate spread" in log and "first-operation spread" in log
    assert "same boot and time namespace" in log
