"""A launch on two workers is reported as the same launch in one process would be.

The same table rows, the same verdict rows and charts in the test's header, the
same metrics file, and percentiles exact: the nearest-rank percentiles of the
merged history's latencies, recomputed here from the JSON lines.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from .conftest import ROBOT_DIR, RobotRun, assert_nothing_left_behind, assert_passed, log_html_strings, run_robot

ONE = "Deductions Launched In One Process"
TWO = "Deductions Launched On Two Workers"
DATA_IMAGE_TITLE = re.compile(r"\[data:image/svg\+xml,[^|\]\s]+\|([^\]]+)\]")
METRICS_LINK = re.compile(r"\[(metrics/[^|\]]+\.json)\|")
ROW_LABEL = re.compile(r"<tr><td>([^<]*)</td>")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("workers_reports"), ROBOT_DIR / "workers_reports.robot")


def _metrics(run: RobotRun, test: str) -> dict[str, Any]:
    (name,) = METRICS_LINK.findall(run.test(test).metadata["Summary"])
    record: dict[str, Any] = json.loads((run.output_dir / name).read_text(encoding="utf-8"))
    return record


def _shape(value: Any) -> Any:
    """The keys of ``value`` all the way down (lists by their first item): what a reader of the file relies on."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return "value"  # a bucket with no operation has None where others have a figure


def _nearest_rank(values: list[int], pct: float) -> float:
    return values[max(1, math.ceil(round(pct * len(values) / 100, 9))) - 1] / 1e9


def test_both_launches_pass_and_leave_nothing_behind(run: RobotRun) -> None:
    assert_passed(run, ONE, TWO)
    assert_nothing_left_behind(run)


def test_the_launch_tables_have_the_same_rows_and_the_workers_start(run: RobotRun) -> None:
    launch_table = re.compile(r"<table[^>]*><caption[^>]*>Launch (\d+): deduct</caption>.*?</table>")
    texts = log_html_strings(run.output_dir / "log.html")
    tables = {match[1]: match[0] for text in texts for match in launch_table.finditer(text)}
    assert set(tables) == {"1", "2"}, sorted(tables)
    on_workers = ROW_LABEL.findall(tables["2"])
    assert "start on workers" in on_workers, on_workers  # the gate and first-operation spreads of the shards
    assert ROW_LABEL.findall(tables["1"]) == [row for row in on_workers if row != "start on workers"]


def test_the_test_headers_have_the_same_verdict_rows_and_charts(run: RobotRun) -> None:
    def header(test: str) -> tuple[list[str], list[str]]:
        summary = run.test(test).metadata["Summary"]
        verdicts = [" | ".join(line.split(" | ")[:3]) for line in summary.splitlines() if line.startswith("| ")]
        charts = [re.sub(r"^Launch \d+: ", "", title) for title in DATA_IMAGE_TITLE.findall(summary)]
        return verdicts, charts

    one, two = header(ONE), header(TWO)
    assert one == two and one[0] and one[1], (one, two)


def test_the_metrics_files_have_the_same_shape_and_the_percentiles_are_exact(run: RobotRun) -> None:
    one, two = _metrics(run, ONE), _metrics(run, TWO)
    assert _shape(one) == _shape(two)
    (launch,) = two["launches"]
    rows = [json.loads(line) for line in (run.output_dir / launch["history_file"]).read_text().splitlines()]
    assert len(rows) == 60 and len({row["agent"] for row in rows}) == 20
    latencies = sorted(
        row["end_ns"] - (row.get("intended_ns") or row["start_ns"]) for row in rows if row["outcome"] == "ok"
    )
    expected = {f"p{pct:g}": _nearest_rank(latencies, pct) for pct in (50, 90, 95, 99)} | {"max": latencies[-1] / 1e9}
    measured = {name: launch["latency_seconds"][name] for name in expected}
    assert measured == pytest.approx(expected, abs=1e-9)
