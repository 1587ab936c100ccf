"""What a stakeholder sees first: a verdict table and charts at the top of each test, suite metadata, metrics files.

Robot writes a test's keywords to output.xml while they run, so nothing can be
put in front of them afterwards. What a listener *can* still change at
``end_test`` is the test's header, which log.html shows above the keywords
(and report.html in its details): we add test metadata ``Summary``: a table
(check, verdict, expected, measured, miss), then each launch's charts as
inline ``data:`` images (no network, no extra file), then the metrics file.
At ``end_test`` the test's figures are also saved as JSON under
``${OUTPUT DIR}/metrics``; at ``end_suite`` the suite gets metadata naming
the services, agents and operations it used, and its launches' histories are
released from memory (their summaries stay, for the suites around it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot.libraries.BuiltIn import BuiltIn, RobotNotRunningError

from stampede.checkers._report import plural
from stampede.resource_usage import ResourceRecording
from stampede.timeseries import time_series
from stampede.verdicts import Verdict

from .charts import Chart
from .launch_charts import launch_charts, resource_charts
from .pabot import results_dir
from .runtime import LaunchRecord, Runtime, Scope

_STATUS = {"PASS": "✔ *PASS*", "FAIL": "✘ *FAIL*", "INCONCLUSIVE": "? *INCONCLUSIVE*"}
_RATES = (
    "success_rate",
    "conflict_rate",
    "retry_rate",
    "serialization_failure_rate",
    "deadlock_rate",
    "timeout_rate",
    "error_rate",
)
_LATENCIES = ("min", "mean", "p50", "p90", "p95", "p99", "max")


@dataclass
class TestFindings:
    """What keywords judged and sampled during the current test."""

    verdicts: list[tuple[str, Verdict]] = field(default_factory=list)
    """(what judged it: a checker's caption or "Thresholds", the verdict)."""
    resources: list[ResourceRecording] = field(default_factory=list)
    resource_charts: list[Chart] = field(default_factory=list)


@dataclass
class _SuiteFrame:
    """A suite's launches (those since ``first_launch``, known when it ends) and the services it used."""

    first_launch: int
    services: dict[str, str] = field(default_factory=dict)
    launches: list[LaunchRecord] = field(default_factory=list)


def describe_suite(metadata: Any, frame: _SuiteFrame) -> None:
    """Set a suite's metadata: the services it used, its agents and its operations."""
    if frame.services:
        metadata["Services"] = ", ".join(f"{kind} {what}" for kind, what in frame.services.items())
    launches = frame.launches
    if not launches:
        return
    agents = [record.result.plan.agents for record in launches]
    operations = sum(int(record.summary.metrics["operations"]) for record in launches)
    failures = sum(int(record.summary.metrics["failures"]) for record in launches)
    spread = f"{min(agents)} to {max(agents)}" if min(agents) != max(agents) else f"{agents[0]}"
    over = plural(len(launches), "launch", "launches")
    metadata["Agents"] = f"{spread} per launch over {over} ({sum(agents)} in all)"
    metadata["Operations"] = f"{operations} ({operations - failures} ok, {failures} not ok)"


class Findings:
    """Verdicts, sampled resources and rendered charts, collected for the listener (one per process)."""

    def __init__(self) -> None:
        self.test = TestFindings()
        self._charts: dict[int, list[Chart]] = {}

    def judged(self, caption: str, verdicts: tuple[Verdict, ...] | list[Verdict]) -> None:
        self.test.verdicts.extend((caption, verdict) for verdict in verdicts)

    def sampled(self, recording: ResourceRecording) -> list[Chart]:
        """Keep what was sampled for the test's header and metrics file; return its charts for the keyword's log."""
        charts = resource_charts(recording)
        self.test.resources.append(recording)
        self.test.resource_charts.extend(charts)
        return charts

    def charts(self, record: LaunchRecord) -> list[Chart]:
        """The launch's charts, rendered once for its keyword's log and the test's header."""
        if record.number not in self._charts:
            self._charts[record.number] = launch_charts(record.result.history, f"Launch {record.number}")
        return self._charts[record.number]

    def forget_charts(self) -> None:
        """Drop the rendered charts once a test's header has them (a long run should not hold them all)."""
        self._charts.clear()


findings = Findings()


def slug(text: str, empty: str) -> str:
    """``text`` fit for a file name (at most 60 characters); ``empty`` when nothing of it is left."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60] or empty


def _cell(text: str) -> str:
    """Text for a cell of a Robot documentation table: one line, no column separator."""
    return " ".join(str(text).replace("|", "¦").split()) or " "


def verdict_rows(verdicts: list[tuple[str, Verdict]], test_passed: bool = False) -> str:
    """The verdicts as a Robot documentation table (log.html and report.html render it as an HTML table).

    In a test that passed, a failed verdict was one the test expected (``Run
    Keyword And Expect Error``: showing that a check catches a bug), and says so.
    """
    lines = ["| *check* | *verdict* | *expected* | *measured* | *miss* |"]
    for caption, verdict in verdicts:
        name = verdict.name if caption in (verdict.name, "") else f"{caption}: {verdict.name}"
        status = _STATUS[verdict.status]
        if test_passed and verdict.status != "PASS":
            status += " (expected by the test)"
        cells = [name, status, verdict.expected, verdict.measured, verdict.miss]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines)


def launch_json(record: LaunchRecord, output_dir: Path) -> dict[str, Any]:
    metrics = record.summary.metrics
    series = time_series(record.result.history)
    history = record.history_file
    return {
        "number": record.number,
        "tool": record.tool.name,
        "load": record.result.plan.describe(),
        "agents": record.result.plan.agents,
        "operations": int(metrics["operations"]),
        "wall_seconds": record.result.wall_seconds,
        "throughput_per_second": metrics["throughput"],
        "latency_seconds": {name: metrics[name] for name in _LATENCIES},
        "latency_of": f"{record.summary.latency.count} successful operations",
        "all_operations_latency_seconds": {name: metrics[f"all_{name}"] for name in _LATENCIES},
        "samples": {name: basis.count for name, basis in record.summary.samples.items()},
        "rates": {name: metrics[name] for name in _RATES},
        "metrics": metrics,
        "history_file": str(history.relative_to(output_dir) if history.is_relative_to(output_dir) else history),
        "timeseries": {
            "bucket_seconds": series.width,
            "buckets": [
                {
                    "start": b.start,
                    "completed": b.completed,
                    "errors": b.errors,
                    "p50": b.p50,
                    "p95": b.p95,
                    "p99": b.p99,
                    "active_agents": b.active_agents,
                }
                for b in series.buckets
            ],
        },
    }


def _verdict_json(caption: str, verdict: Verdict) -> dict[str, Any]:
    return {
        "judged_by": caption,
        "check": verdict.name,
        "verdict": verdict.status,
        "judgement": verdict.judgement.value,
        "expected": verdict.expected,
        "measured": verdict.measured,
        "miss": verdict.miss,
        "message": verdict.message,
    }


class ReportListener:
    """Listener (API v3) that TestServices registers: test headers, metrics files and suite metadata."""

    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._suites: list[_SuiteFrame] = []
        self._parents: dict[int, _SuiteFrame] = {}
        """Totals of the suites above the outermost one that imported the library, by id of their result."""
        self._test_first_launch = 0
        self._launch_calls: list[int] = []
        """Launch numbers handed out when each Launch Agents call still running began."""

    def start_keyword(self, data: Any, result: Any) -> None:
        if _is_launch(result):
            self._launch_calls.append(self.runtime.launch_numbers)

    def end_keyword(self, data: Any, result: Any) -> None:
        """A launch Robot refused before Stampede saw it (arguments it could not convert) is noted as not run too."""
        if not _is_launch(result) or not self._launch_calls:
            return
        numbers = self._launch_calls.pop()
        if result.failed and self.runtime.launch_numbers == numbers:
            tool = _resolved(data.args[0]) if data.args else "?"
            self.runtime.did_not_run(tool, current_scope(), result.message)

    def start_suite(self, data: Any, result: Any) -> None:
        self._suites.append(_SuiteFrame(len(self.runtime.launches)))

    def start_test(self, data: Any, result: Any) -> None:
        findings.test = TestFindings()
        self._test_first_launch = len(self.runtime.launches)

    def end_test(self, data: Any, result: Any) -> None:
        self._note_services()
        launches = self.runtime.launches[self._test_first_launch :]
        test = findings.test
        charts = [chart for record in launches for chart in findings.charts(record)] + test.resource_charts
        parts = []
        if test.verdicts:
            parts.append(verdict_rows(test.verdicts, test_passed=result.passed))
        if charts:
            parts.append(" ".join(f"[{chart.data_uri()}|{chart.title}]" for chart in charts))
        if launches or test.verdicts or test.resources:
            name = self._write_metrics(result, launches, test)
            parts.append(f"Figures and verdicts as JSON: [{name}|{name}]")
            # One entry: Robot sorts metadata by name, and the verdicts must come before the charts.
            result.metadata["Summary"] = "\n\n".join(parts)
        findings.forget_charts()

    def end_suite(self, data: Any, result: Any) -> None:
        if not self._suites:
            return  # a suite whose start this listener did not see (it began before the library was imported)
        frame = self._suites.pop()
        self._note_services()
        frame.launches = self.runtime.launches[frame.first_launch :]
        describe_suite(result.metadata, frame)
        # Its tests' headers and metrics files are written: what a later suite needs of its launches is their summary.
        self.runtime.release_suite(result.full_name)
        if not self._suites:
            # The outermost suite that imported the library. Its parents (a folder of suites with no
            # __init__.robot, such as `robot suites/`) never reach this listener: total them up here.
            # Robot writes a suite's metadata when the suite ends, so they still show these figures.
            parent = result.parent
            while parent is not None:
                totals = self._parents.setdefault(id(parent), _SuiteFrame(0))
                totals.launches = totals.launches + frame.launches
                totals.services.update(frame.services)
                describe_suite(parent.metadata, totals)
                parent = parent.parent

    def _note_services(self) -> None:
        """Remember the services in use now, for every suite running (they stop before the suite's end)."""
        services = self.runtime.services
        if services is None:
            return
        seen: dict[str, str] = {}
        if services.postgres is not None:
            kind = "embedded" if services.embedded_postgres is not None else "external"
            seen["PostgreSQL"] = f"{services.postgres.server_version} ({kind})"
        if services.redis is not None:
            kind = "embedded" if services.embedded_redis is not None else "external"
            seen["Redis"] = f"{services.redis.server_version} ({kind})"
        if services.agent_service is not None:
            seen["agent service"] = "(reference)" if services.agent_service.pid is not None else "(external)"
        for frame in self._suites:
            frame.services.update(seen)

    def _write_metrics(self, result: Any, launches: list[LaunchRecord], test: TestFindings) -> str:
        """Write the test's figures and verdicts as JSON; return the file's path relative to the output dir."""
        output_dir = results_dir()
        suite = _variable("SUITE NAME", "suite")
        # The test's id (s1-s2-t3) keeps two tests apart whose names agree in the slug's first 60 characters.
        name = f"metrics/{slug(suite, 'suite')}.{slug(result.name, 'suite')}.{result.id}.{self.runtime.run_id}.json"
        path = output_dir / name
        record = {
            "suite": suite,
            "test": result.name,
            "status": result.status,
            "message": result.message,
            "run_id": self.runtime.run_id,
            "launches": [launch_json(launch, output_dir) for launch in launches],
            "verdicts": [_verdict_json(caption, verdict) for caption, verdict in test.verdicts],
            "resources": [recording.metrics() for recording in test.resources],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return name


def _variable(name: str, default: str) -> str:
    try:
        return str(BuiltIn().get_variable_value("${" + name + "}", default))
    except RobotNotRunningError:
        return default


def current_scope() -> Scope | None:
    """Where Robot is now: the current test, or the current suite's setup or teardown (None outside Robot)."""
    try:
        builtin = BuiltIn()
        suite = builtin.get_variable_value("${SUITE NAME}")
        test = builtin.get_variable_value("${TEST NAME}")
    except RobotNotRunningError:
        return None
    return Scope(str(suite), None if test is None else str(test)) if suite is not None else None


_LAUNCH_KEYWORDS = frozenset({"Launch Agents", "Launch Agents In Background"})


def _is_launch(result: Any) -> bool:
    return getattr(result, "owner", None) == "ConcurrentAgents" and getattr(result, "name", None) in _LAUNCH_KEYWORDS


def _resolved(argument: Any) -> str:
    """A keyword argument as written, its variables replaced where they can be."""
    try:
        return str(BuiltIn().replace_variables(argument))
    except Exception:  # noqa: BLE001 - an argument that cannot be resolved is shown as written
        return str(argument)
