"""The verdict table at the top of a test: one Robot documentation table row per verdict, safe to render."""

from __future__ import annotations

from robot.utils import html_format

from stampede.verdicts import Verdict
from stampede_robot.reporting import verdict_rows


def test_each_verdict_is_a_row_with_its_check_verdict_expected_measured_and_miss() -> None:
    rows = verdict_rows(
        [
            ("Thresholds", Verdict("p95", True, "p95 < 500 ms", "120 ms")),
            ("Credits conserved", Verdict("Credits conserved", False, "99800", "99996", "196 credits", "boom")),
            ("Locks", Verdict("holders overlap", False, "none", "a | b", inconclusive=True)),
        ]
    )
    lines = rows.splitlines()
    assert lines[0] == "| *check* | *verdict* | *expected* | *measured* | *miss* |"
    assert lines[1] == "| Thresholds: p95 | ✔ *PASS* | p95 < 500 ms | 120 ms |   |"
    assert lines[2] == "| Credits conserved | ✘ *FAIL* | 99800 | 99996 | 196 credits |"
    assert lines[3] == "| Locks: holders overlap | ? *INCONCLUSIVE* | none | a ¦ b |   |"
    html = html_format(rows)
    assert html.count("<tr>") == 4 and "p95 &lt; 500 ms" in html and "<b>FAIL</b>" in html


def test_in_a_test_that_passed_a_failed_verdict_is_marked_as_expected() -> None:
    rows = verdict_rows([("Lost updates", Verdict("lost updates", False, "0", "12", "12"))], test_passed=True)
    assert rows.splitlines()[1] == "| Lost updates: lost updates | ✘ *FAIL* (expected by the test) | 0 | 12 | 12 |"
