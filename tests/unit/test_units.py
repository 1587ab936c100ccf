"""Human-written quantities: durations and positive whole numbers."""

from __future__ import annotations

import pytest

from stampede.errors import ConfigurationError
from stampede.units import format_duration, parse_duration, parse_positive_duration, require_positive_int


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2 s", 2.0),
        ("2s", 2.0),
        ("2 S", 2.0),
        ("500ms", 0.5),
        ("500 MS", 0.5),
        ("250 us", 0.00025),
        ("100 µs", 0.0001),
        ("1500000 ns", 0.0015),
        ("1 min", 60.0),
        ("1.5 minutes", 90.0),
        ("2 m", 120.0),
        ("1 h", 3600.0),
        ("10 seconds", 10.0),
        ("  3  ", 3.0),
        ("0.25", 0.25),
        ("-5 s", -5.0),
        (2, 2.0),
        (0.5, 0.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    ["abc", "", "s", "5 parsecs", "1e3 s", "- 5 s", "2 s s", "5,5 s", True, False, None, float("nan"), float("inf")],
)
def test_parse_duration_rejects_what_is_not_a_duration(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"think time must be a duration such as '2 s'"):
        parse_duration(value, what="think time")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0 s", "-5 s", 0, -1.5, "0ms"])
def test_parse_positive_duration_refuses_zero_and_less(value: str | float) -> None:
    with pytest.raises(ConfigurationError, match=rf"timeout must be longer than 0 s, got {value!r}"):
        parse_positive_duration(value, what="timeout")


def test_parse_positive_duration_accepts_positive() -> None:
    assert parse_positive_duration("200 ms", what="timeout") == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.00025, "250 µs"), (0.0123, "12.3 ms"), (0.5, "500.0 ms"), (1.5, "1.50 s"), (75.0, "75.00 s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("value", "number"), [(5, 5), ("3", 3), (" 7 ", 7), ("1", 1)])
def test_require_positive_int(value: int | str, number: int) -> None:
    assert require_positive_int(value, what="agents") == number


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (0, "agents must be at least 1, got 0"),
        ("-5", "agents must be at least 1, got -5"),
        ("abc", "agents must be a whole number of at least 1, got 'abc'"),
        ("1.5", "got '1.5'"),
        (2.5, "got 2.5"),
        (True, "got True"),
    ],
)
def test_require_positive_int_rejects(value: object, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        require_positive_int(value, what="agents")  # type: ignore[arg-type]
