"""Fairness between agents and hidden serialization, on hand-made histories: each fails on a broken one."""

from __future__ import annotations

import pytest

from stampede.checkers.fairness import WorkMeasure, check_fairness, jain_index
from stampede.checkers.serialization import check_ran_in_parallel, default_parallelism, measure_concurrency
from stampede.errors import ConfigurationError
from stampede.history import History, Operation
from stampede.outcomes import Outcome

MS = 1_000_000


def op(agent: int, start_ms: float, end_ms: float, outcome: Outcome = Outcome.OK) -> Operation:
    return Operation(agent, f"user-{agent}", "work", 0, int(start_ms * MS), int(end_ms * MS), outcome)


def served(counts: dict[int, int], duration_ms: float = 10) -> History:
    """Each agent's operations back to back, all agents side by side."""
    return History(
        op(agent, i * duration_ms, (i + 1) * duration_ms) for agent, count in counts.items() for i in range(count)
    )


# Fairness


def test_jain_index_bounds() -> None:
    assert jain_index([5, 5, 5, 5]) == 1.0
    assert jain_index([8, 0, 0, 0]) == 0.25
    assert jain_index([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]) == pytest.approx(0.8)


def test_equal_work_is_fair() -> None:
    verdict = check_fairness(served({1: 50, 2: 48, 3: 52, 4: 50}))

    assert verdict.passed and not verdict.inconclusive
    assert verdict.value == pytest.approx(200**2 / (4 * (50**2 + 48**2 + 52**2 + 50**2)))
    assert verdict.message == (
        "Agents were served fairly: Jain's fairness index 1.00 over 4 agents' operations, at least 0.80; "
        "most served: agent 3 with 52 operations, least served: agent 2 with 48 operations."
    )


def test_one_agent_taking_most_of_the_work_is_unfair() -> None:
    verdict = check_fairness(served({1: 120, 2: 10, 3: 2, 4: 8}), agents=range(1, 6))

    assert not verdict.passed
    assert verdict.value == pytest.approx(140**2 / (5 * (120**2 + 10**2 + 2**2 + 8**2)))
    assert verdict.message == (
        "Agents were not served fairly: Jain's fairness index 0.27 over 5 agents' operations (1.00 = all equal), "
        "expected at least 0.80; most served: agent 1 with 120 operations, least served: agent 5 with 0 operations "
        "(1 agent completed none)."
    )
    assert [row["agent"] for row in verdict.details] == [5, 3, 4, 2, 1]
    assert verdict.details[-1]["share"] == "85.7%"


def test_failed_operations_are_not_work_done() -> None:
    history = served({1: 10, 2: 10})
    history.append(op(2, 0, 1, Outcome.TIMEOUT))
    for i in range(10):
        history.append(op(3, i, i + 1, Outcome.CONFLICT))

    verdict = check_fairness(history, at_least=0.9)

    assert not verdict.passed
    assert "least served: agent 3 with 0 operations (1 agent completed none)" in verdict.message


def test_fairness_by_service_time() -> None:
    history = History([op(1, 0, 900), op(2, 0, 100), op(2, 100, 200)])

    verdict = check_fairness(history, measure=WorkMeasure.SERVICE_TIME)

    assert not verdict.passed
    assert "most served: agent 1 with 900.0 ms, least served: agent 2 with 200.0 ms" in verdict.message
    assert check_fairness(history, measure=WorkMeasure.SERVICE_TIME, at_least=0.6).passed


def test_fairness_with_nothing_to_compare_is_inconclusive() -> None:
    assert check_fairness(served({1: 5})).inconclusive
    nothing_done = History([op(1, 0, 1, Outcome.TIMEOUT), op(2, 0, 1, Outcome.TIMEOUT)])
    verdict = check_fairness(nothing_done)
    assert verdict.inconclusive
    assert verdict.message == "Fairness not judged: none of the 2 agents completed an operation."


@pytest.mark.parametrize(
    ("bound", "error"), [(0, "above 0 and at most 1"), (1.5, "above 0 and at most 1"), (0.25, "can never fail")]
)
def test_a_fairness_bound_that_cannot_work_is_refused(bound: float, error: str) -> None:
    with pytest.raises(ConfigurationError, match=error):
        check_fairness(served({1: 1, 2: 1, 3: 1, 4: 1}), at_least=bound)


# Hidden serialization


def parallel(agents: int, per_agent: int, duration_ms: float = 10) -> History:
    return served(dict.fromkeys(range(1, agents + 1), per_agent), duration_ms)


def one_at_a_time(agents: int, per_agent: int, duration_ms: float = 10, gap_ms: float = 0.2) -> History:
    """Every operation of every agent after the previous one ended, round robin, as behind one global lock."""
    history = History()
    clock = 0.0
    for _ in range(per_agent):
        for agent in range(1, agents + 1):
            history.append(op(agent, clock, clock + duration_ms))
            clock += duration_ms + gap_ms
    return history


def test_concurrency_of_overlapping_and_back_to_back_operations() -> None:
    found = measure_concurrency(History([op(1, 0, 10), op(2, 5, 15), op(3, 10, 20), op(4, 20, 30)]))

    assert (found.operations, found.agents, found.max_in_flight) == (4, 4, 2)
    assert found.busy_seconds == pytest.approx(0.040)
    assert found.average == pytest.approx(40 / 30)


def test_agents_working_side_by_side_ran_in_parallel() -> None:
    verdict = check_ran_in_parallel(parallel(10, 20))

    assert verdict.passed
    assert verdict.value == pytest.approx(10.0)
    assert verdict.message == (
        "Agents ran in parallel: 10 agents, average 10.00 operations in flight (max 10) over 200.0 ms; "
        "expected at least 2.50."
    )


def test_agents_behind_one_lock_ran_one_at_a_time() -> None:
    verdict = check_ran_in_parallel(one_at_a_time(10, 50))

    assert not verdict.passed
    assert verdict.value == pytest.approx(10 / 10.2, rel=1e-3)
    assert verdict.message == (
        "Agents ran one at a time: 10 agents, average 0.98 operations in flight (max 1) over 5.10 s; "
        "expected at least 2.50."
    )
    assert verdict.details[0]["max in flight"] == 1


def test_agents_that_mostly_waited_for_each_other_hardly_ran_in_parallel() -> None:
    history = one_at_a_time(6, 20)
    history.append(op(1, 0, 5))  # one overlap: the peak is 2, the average stays near 1

    verdict = check_ran_in_parallel(history, at_least=2)

    assert not verdict.passed
    assert verdict.message.startswith(
        "Agents hardly ran in parallel: 6 agents, average 0.98 operations in flight (max 2)"
    )


def test_parallelism_bound_defaults_to_a_quarter_of_the_agents() -> None:
    assert default_parallelism(2) == 1.5
    assert default_parallelism(10) == 2.5
    assert default_parallelism(40) == 10


def test_parallelism_with_nothing_to_measure_is_inconclusive() -> None:
    assert check_ran_in_parallel(parallel(1, 5)).inconclusive
    assert check_ran_in_parallel(History([op(1, 3, 3), op(2, 3, 3)])).inconclusive


@pytest.mark.parametrize(("bound", "error"), [(0, "above 0"), (-1, "above 0"), (11, "can never be reached: 10 agents")])
def test_a_parallelism_bound_that_cannot_work_is_refused(bound: float, error: str) -> None:
    with pytest.raises(ConfigurationError, match=error):
        check_ran_in_parallel(parallel(10, 2), at_least=bound)


def on_worker(operation: Operation, clock_error_ms: float) -> Operation:
    operation.clock_error_ns = int(clock_error_ms * MS)
    return operation


def test_parallelism_within_the_workers_clock_errors_of_the_bound_is_inconclusive() -> None:
    # Two agents on two workers, 10 ms of work each over a 10 ms span: 2.0 in flight, 1.5 expected.
    exact = History([op(1, 0, 10), op(2, 0, 10)])
    assert check_ran_in_parallel(exact, at_least=1.5).passed
    blurred = History([on_worker(op(1, 0, 10), 2), on_worker(op(2, 0, 10), 2)])
    verdict = check_ran_in_parallel(blurred, at_least=1.5)
    assert verdict.inconclusive and not verdict.passed, verdict.message
    assert "between 1.43 and 3.33 within the workers' clock errors" in verdict.message
    assert check_ran_in_parallel(blurred, at_least=1.2).passed, "above the bound whatever the clocks"
    assert not check_ran_in_parallel(
        History([on_worker(op(1, 0, 10), 2), on_worker(op(2, 10, 20), 2)]), at_least=1.5
    ).passed


def test_fairness_compares_no_instants_of_different_workers_so_clock_errors_leave_it_unchanged() -> None:
    fair = History([on_worker(op(agent, 0, 10), 50) for agent in (1, 2, 3) for _ in range(4)])
    assert check_fairness(fair).passed
