"""Inline SVG charts: valid SVG with a title, axis labels with units and a legend; a launch's and a sampling's."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import unquote

import pytest

from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.resource_usage import ProcessTrace, ResourceRecording, Sample
from stampede_robot.charts import Series, format_tick, line_chart, nice_ticks
from stampede_robot.launch_charts import inline_html, launch_charts, resource_charts, time_unit

SVG = "{http://www.w3.org/2000/svg}"
MS = 1_000_000


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [element.text or "" for element in root.iter() if element.tag in (f"{SVG}text", f"{SVG}title")]


def test_a_chart_is_valid_svg_with_its_title_axis_labels_and_a_legend_entry_per_series() -> None:
    chart = line_chart(
        "Launch 1: latency over time",
        [Series("p50", [(0, 1.0), (1, 2.0)]), Series("p99", [(0, 3.0), (1, None), (2, 4.0)])],
        "seconds since the launch began",
        "latency (ms)",
    )
    root = ET.fromstring(chart.svg)
    assert root.tag == f"{SVG}svg"
    written = texts(chart.svg)
    for text in ("Launch 1: latency over time", "seconds since the launch began", "latency (ms)", "p50", "p99"):
        assert text in written
    assert len(root.findall(f"{SVG}polyline")) == 1, "p50's line; p99 is broken by its gap into two dots"
    assert len(root.findall(f"{SVG}circle")) == 2


def test_titles_and_names_are_escaped_so_the_svg_stays_valid() -> None:
    chart = line_chart("p95 < 5 ms & 'quoted'", [Series("<b>", [(0, 1.0)])], "x", "y")
    assert "p95 < 5 ms & 'quoted'" in texts(chart.svg) and "<b>" in texts(chart.svg)
    uri = chart.data_uri()
    assert unquote(uri.removeprefix("data:image/svg+xml,")) == chart.svg
    assert not set(uri) & set(' #|]_*<>&"`'), "nothing a data URI or Robot's formatting would read otherwise"


def test_a_chart_without_series_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one series"):
        line_chart("empty", [], "x", "y")


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]), (0, 37, [0, 10, 20, 30, 40]), (0, 0, [0, 0.2, 0.4, 0.6, 0.8, 1.0])],
)
def test_ticks_are_round_and_cover_the_range(low: float, high: float, expected: list[float]) -> None:
    assert nice_ticks(low, high) == pytest.approx(expected)


def test_tick_labels_stay_short() -> None:
    assert [format_tick(v) for v in (0, 0.25, 12.5, 1500, 2_000_000)] == ["0", "0.25", "12.5", "1,500", "2,000,000"]


def test_latencies_are_shown_in_the_unit_they_read_best_in() -> None:
    assert time_unit(2.5) == (1.0, "s") and time_unit(0.25) == (1e-3, "ms") and time_unit(2e-5) == (1e-6, "µs")


def test_a_launch_gets_four_charts_titled_with_its_number_and_a_few_kb_each() -> None:
    history = History(
        Operation(
            agent,
            f"u{agent}",
            "deduct",
            i,
            i * 50 * MS,
            i * 50 * MS + (agent + 1) * MS,
            Outcome.OK if agent else Outcome.CONFLICT,
        )
        for agent in range(10)
        for i in range(20)
    )
    charts = launch_charts(history, "Launch 3")
    titles = [chart.title for chart in charts]
    assert [title.split(": ")[1].split(" (")[0] for title in titles] == [
        "latency over time",
        "latency distribution",
        "throughput and errors",
        "active agents",
    ]
    for chart in charts:
        assert chart.title in texts(chart.svg)
        assert len(chart.svg) < 8_000, f"{chart.title}: {len(chart.svg)} bytes"
    assert "latency (ms)" in texts(charts[0].svg)
    assert "not ok" in texts(charts[2].svg)
    assert inline_html(charts).count("<svg") == 4
    assert launch_charts(History(), "Launch 4") == []


def test_sampled_resources_get_a_cpu_and_a_memory_chart_with_a_line_per_process() -> None:
    trace = ProcessTrace("harness", 42, [Sample(0, None, 50_000_000, 10, 3), Sample(MS * 100, 25.0, 60_000_000, 10, 3)])
    target = ProcessTrace("target", 43, [Sample(0, None, 10_000_000, 5, 1), Sample(MS * 100, 80.0, 12_000_000, 5, 1)])
    charts = resource_charts(ResourceRecording(0.1, {"harness": trace, "target": target}, 0.0, 0.1))
    assert [chart.title.split(" (")[0] for chart in charts] == ["CPU", "Memory, RSS"]
    assert "CPU (% of one core)" in texts(charts[0].svg) and "RSS (MB)" in texts(charts[1].svg)
    assert "harness (pid 42)" in texts(charts[1].svg) and "target (pid 43)" in texts(charts[1].svg)
