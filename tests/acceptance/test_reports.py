"""Reports end to end: verdict tables and charts in each test's header, charts per launch, metrics files per test,
suite metadata, and a baseline that passes the same workload and fails a regressed one with both values."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import pytest

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    assert_passed,
    log_html_strings,
    run_robot,
)

SUITE = ROBOT_DIR / "reports.robot"
TWINS = ROBOT_DIR / "failing_twins" / "reports.robot"
CHARTED = "Credit Deductions Are Charted, Judged And Saved As A Baseline"
SAMPLED = "A Sampled Run Charts CPU And Memory"
SAME = "The Same Workload Does Not Regress From Its Baseline"
MISSPELT = "A Misspelt Tolerance Or Baseline Fails Saying What To Write"
REGRESSED = "Refused Deductions Regress From The Atomic Baseline"
NOTHING = "A Latency Threshold Over No Successful Deduction Has Nothing To Measure"
LAUNCH_CHARTS = ("latency over time", "latency distribution", "throughput and errors", "active agents")
DATA_IMAGE = re.compile(r"\[data:image/svg\+xml,([^|\]\s]+)\|([^\]]+)\]")
METRICS_LINK = re.compile(r"\[(metrics/[^|\]]+\.json)\|")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("reports"), SUITE, TWINS)


def test_the_suite_passes_and_the_regressed_twin_fails_naming_baseline_and_now(run: RobotRun) -> None:
    assert_passed(run, CHARTED, SAMPLED, SAME, MISSPELT)
    assert_failed_with(
        run,
        REGRESSED,
        r"^success_rate regressed: baseline 100\.00%, now \d+\.\d+% over 60 operations "
        r"\(-\d+\.\d+ percentage points\); "
        r"'success_rate may drop by at most 1%' allows at least 99\.00%, missed by \d+\.\d+ percentage points$",
    )
    # Before: p99 was taken over the refused operations too, and passed.
    assert_failed_with(
        run,
        NOTHING,
        r"^1 of 2 thresholds had nothing to measure: p99 < 10\.00 s: nothing to measure, there were 0 successful "
        r"operations \(of 5\)$",
    )
    assert_nothing_left_behind(run)


def test_every_launch_logs_its_four_charts_as_inline_svg_and_the_sampling_its_cpu_and_memory(run: RobotRun) -> None:
    svgs = [svg for text in log_html_strings(run.output_dir / "log.html") for svg in re.findall(r"<svg.*?</svg>", text)]
    titles = [ET.fromstring(svg).findtext("{http://www.w3.org/2000/svg}title") for svg in svgs]
    for launch in range(1, 5):
        for chart in LAUNCH_CHARTS:
            assert any(t and t.startswith(f"Launch {launch}: {chart}") for t in titles), (launch, chart, titles)
    assert any(t and t.startswith("CPU (sampled every 100.0 ms)") for t in titles)
    assert any(t and t.startswith("Memory, RSS") for t in titles)


@pytest.mark.parametrize(
    ("test", "rows", "charts"),
    [
        (
            CHARTED,
            [
                "| Thresholds: success_rate | ✔ *PASS* | success_rate >= 99.00% | 100.00% over 50 operations |",
                "| Thresholds: p95 | ✔ *PASS* | p95 < 10.00 s |",
                "| conservation | ✔ *PASS* |",
            ],
            4,
        ),
        (SAMPLED, ["| Resource usage: harness_rss_growth | ✔ *PASS* |"], 6),
        (
            SAME,
            [
                "success_rate vs baseline | ✔ *PASS* | success_rate >= 99.00% (baseline 100.00% - 1 percentage",
                "operations vs baseline | ✔ *PASS* | operations >= 50 (baseline 50 - 0%)",
            ],
            4,
        ),
        (REGRESSED, ["success_rate vs baseline | ✘ *FAIL* | success_rate >= 99.00%"], 4),
        (
            NOTHING,
            [
                "| Thresholds: all_p99 | ✔ *PASS* | all_p99 < 10.00 s |",
                "| Thresholds: p99 | ? *INCONCLUSIVE* | p99 < 10.00 s | nothing (0 successful operations (of 5)) |",
            ],
            4,
        ),
    ],
)
def test_each_test_header_starts_with_its_verdict_table_then_its_charts(
    run: RobotRun, test: str, rows: list[str], charts: int
) -> None:
    summary = run.test(test).metadata["Summary"]
    lines = summary.splitlines()
    assert lines[0] == "| *check* | *verdict* | *expected* | *measured* | *miss* |"
    for row in rows:
        assert any(row in line for line in lines), f"{row!r} not in the summary of {test}:\n{summary}"
    images = DATA_IMAGE.findall(summary)
    assert len(images) == charts
    for encoded, title in images:
        svg = unquote(encoded)
        assert ET.fromstring(svg).findtext("{http://www.w3.org/2000/svg}title") == title
    assert summary.index("| *check* |") < summary.index("[data:image"), "verdicts come before charts"


def test_each_test_writes_a_metrics_file_of_its_own(run: RobotRun) -> None:
    files = {}
    for test in (CHARTED, SAMPLED, SAME, REGRESSED):
        (name,) = METRICS_LINK.findall(run.test(test).metadata["Summary"])
        files[test] = run.output_dir / name
    assert len(set(files.values())) == 4
    for test, path in files.items():
        record = json.loads(path.read_text(encoding="utf-8"))
        assert record["test"] == test and record["run_id"] in path.name
        assert {"suite", "status", "message", "launches", "verdicts", "resources"} <= record.keys()
        (launch,) = record["launches"]
        assert {"latency_seconds", "rates", "metrics", "timeseries", "history_file", "agents"} <= launch.keys()
        assert set(launch["latency_seconds"]) >= {"p50", "p95", "p99", "max"}
        assert launch["rates"]["success_rate"] == launch["metrics"]["success_rate"]
        assert (run.output_dir / launch["history_file"]).is_file()
        buckets = launch["timeseries"]["buckets"]
        assert sum(bucket["completed"] for bucket in buckets) == launch["operations"]
    regressed = json.loads(files[REGRESSED].read_text(encoding="utf-8"))
    assert regressed["status"] == "FAIL"
    assert [(v["judged_by"], v["verdict"]) for v in regressed["verdicts"]] == [
        ("Launch 4 against baseline 'reports-credits'", "FAIL")
    ]
    (name,) = METRICS_LINK.findall(run.test(NOTHING).metadata["Summary"])
    nothing = json.loads((run.output_dir / name).read_text(encoding="utf-8"))
    assert [(v["check"], v["verdict"], v["judgement"]) for v in nothing["verdicts"]] == [
        ("all_p99", "PASS", "passed"),
        ("p99", "INCONCLUSIVE", "inconclusive"),
    ]
    (launch,) = nothing["launches"]
    assert launch["samples"]["p99"] == 0 and launch["samples"]["all_p99"] == 5
    assert json.loads(files[SAMPLED].read_text(encoding="utf-8"))["resources"][0]["harness_rss_max"] > 0


def test_each_suite_names_its_services_agents_and_operations(run: RobotRun) -> None:
    suite, twins = run.suite.suites
    assert re.fullmatch(r"PostgreSQL \d+\S*( \(.+\))? \((embedded|external)\)", suite.metadata["Services"])
    assert suite.metadata["Agents"] == "10 per launch over 3 launches (30 in all)"
    assert suite.metadata["Operations"] == "150 (150 ok, 0 not ok)"
    assert twins.metadata["Agents"] == "5 to 20 per launch over 2 launches (25 in all)"
    assert re.fullmatch(r"65 \(\d+ ok, \d+ not ok\)", twins.metadata["Operations"])
    # The folder above them imports no library, yet totals both (as `robot suites/` does for every area).
    assert run.suite.metadata["Agents"] == "5 to 20 per launch over 5 launches (55 in all)"
    assert re.fullmatch(r"215 \(\d+ ok, \d+ not ok\)", run.suite.metadata["Operations"])
    assert run.suite.metadata["Services"] == suite.metadata["Services"]


def test_the_baseline_is_saved_where_the_keyword_says(run: RobotRun) -> None:
    saved = json.loads((run.output_dir / "baselines" / "reports-credits.json").read_text(encoding="utf-8"))
    assert saved["metrics"]["operations"] == 50 and saved["source"].startswith(CHARTED)
