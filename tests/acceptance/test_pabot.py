"""pabot runs suites in parallel processes: each with services of its own, no clash in the results.

``pabot --processes 2`` on three small suites (one needing the reference agent
service, two PostgreSQL): every test passes, pabot merges the outputs, every
process has a run id of its own (the environment's ``STAMPEDE_RUN_ID`` plus
``_p<n>``), Stampede's files land in the merged output dir where the merged log's
links reach them, and no server, schema or key is left behind.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from .conftest import ROOT, RobotRun, assert_nothing_left_behind, run_robot

SUITES = ("suites/tool_conflicts/09__sql_defined_tools.robot", "suites/agent_startup", "suites/postgres_isolation")
SUITE_NAMES = {"Sql Defined Tools", "Concurrent Agent Startup", "Spec Files", "Keyword Api"}
LINK = re.compile(r"\[(metrics/[^|\]]+)\|")


@pytest.fixture(scope="module")
def pabot_run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    # Run from a folder of its own: pabot keeps a .pabotsuitenames cache in its working directory.
    cwd = tmp_path_factory.mktemp("pabot_cwd")
    run = run_robot(
        tmp_path_factory.mktemp("pabot"),
        *(ROOT / suite for suite in SUITES),
        runner=("pabot.pabot", "--processes", "2", "--command", sys.executable, "-m", "robot", "--end-command"),
        cwd=cwd,
    )
    assert not any(ROOT.glob(".pabotsuitenames")), "pabot's cache was written into the checkout"
    return run


def test_every_suite_runs_in_a_process_of_its_own_and_passes(pabot_run: RobotRun) -> None:
    failed = {name: test.message for name, test in pabot_run.tests.items() if test.status != "PASS"}
    assert pabot_run.returncode == 0 and not failed, f"{failed}\n{pabot_run.console[-3000:]}"
    merged = {suite.name for suite in pabot_run._all_suites(pabot_run.suite)}
    assert merged >= SUITE_NAMES, f"the merged output lacks {SUITE_NAMES - merged}"
    processes = [path for path in (pabot_run.output_dir / "pabot_results").iterdir() if path.is_dir()]
    assert len(processes) >= len(SUITE_NAMES), f"pabot ran {len(processes)} robot processes"


def test_each_process_has_its_own_run_id_and_its_files_land_where_the_merged_log_links(pabot_run: RobotRun) -> None:
    output_dir = pabot_run.output_dir
    metrics = sorted((output_dir / "metrics").glob("*.json"))
    assert metrics, f"no metrics in {output_dir}"
    records = [json.loads(path.read_text(encoding="utf-8")) for path in metrics]
    run_ids = {record["suite"]: record["run_id"] for record in records}
    assert all(re.fullmatch(r"at[0-9a-f]{8}_p\d+", run_id) for run_id in run_ids.values()), run_ids
    assert len(set(run_ids.values())) == len(run_ids) >= 2, f"suites in different processes share a run id: {run_ids}"
    histories = [output_dir / launch["history_file"] for record in records for launch in record["launches"]]
    assert histories and all(path.is_file() for path in histories), histories
    for run_id in run_ids.values():
        assert list((output_dir / "histories").glob(f"*.{run_id}.*.chunks")), f"no chunk folder of {run_id}"
    links = [match for test in pabot_run.suite.all_tests for match in LINK.findall(test.metadata.get("Summary", ""))]
    assert links and all((output_dir / link).is_file() for link in links), links
    stray = [path for path in (output_dir / "pabot_results").rglob("*") if path.name in {"histories", "metrics"}]
    assert not stray, f"Stampede wrote into a process's own folder, which the merged log does not link: {stray}"


def test_nothing_is_left_behind(pabot_run: RobotRun) -> None:
    assert_nothing_left_behind(pabot_run)
