"""The drawing of an anomaly's cycle: well-formed SVG, one circle per transaction, one labelled arrow per edge."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from list_append_builder import a, check, r, t

from stampede_robot.cycle_drawing import MAX_DRAWN, cycle_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_a_write_skew_is_drawn_as_two_transactions_and_two_rw_arrows() -> None:
    (skew,) = check(t(r("x"), a("y", 1)), t(r("y"), a("x", 1)), t(r("x", 1), r("y", 1))).anomalies
    root = ET.fromstring(cycle_svg(skew))
    assert len(root.findall(f"{SVG}circle")) == 2
    assert len(root.findall(f"{SVG}path")) == 2
    labels = [text.text for text in root.findall(f"{SVG}text")]
    assert labels.count("rw") == 2 and {"T1", "T2", "G2-item"} <= set(labels)


def test_an_anomaly_that_is_no_cycle_is_not_drawn() -> None:
    (g1b,) = check(t(a("x", 1), a("x", 2)), t(r("x", 1))).anomalies
    assert cycle_svg(g1b) == ""


def test_a_cycle_too_long_to_label_is_not_drawn() -> None:
    n = MAX_DRAWN + 1
    # T(i) reads key i as [] and appends to key i+1 (mod n): each read misses the previous one's append.
    history = [t(r(i), a((i + 1) % n, i)) for i in range(n)]
    observer = t(*(r((i + 1) % n, i) for i in range(n)))
    (ring,) = check(*history, observer).anomalies
    assert len(ring.steps) == n
    assert cycle_svg(ring) == ""
