"""Bad input fails at once with a message that says what to fix; passwords never reach the output."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from stampede.services.embedded_postgres import EmbeddedPostgres

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_nothing_left_behind,
    assert_nowhere_in_outputs,
    closed_port,
    run_robot,
)

# test name -> substrings its failure message must contain
BAD_INPUT: dict[str, list[str]] = {
    "Zero Agents Are Refused": ["agents must be at least 1", "got 0"],
    "Negative Agents Are Refused": ["agents must be at least 1", "got -5"],
    "Agents That Are Not A Whole Number Are Refused": ["argument 'agents'", "'many'", "integer"],
    # Robot's enum conversion lists member names (READ_COMMITTED); compared case- and underscore-blind below.
    "An Unknown Isolation Level Is Refused": [
        "argument 'isolation'",
        "'read sometimes'",
        "read committed",
        "repeatable read",
        "serializable",
    ],
    "A Malformed Threshold Is Refused": ["'p95 less than 5'", "<metric> <comparison> <value><unit>"],
    "A Latency Threshold Without A Unit Is Refused": ["'p95 < 5'", "no unit", "ms"],
    "A Rate Threshold With A Time Unit Is Refused": ["'success_rate >= 99ms'", "'ms'", "%"],
    "A SQL Tool With A Syntax Error Is Refused": ["'broken sql'", "does not run", "syntax error"],
    "A SQL Tool With An Undefined Parameter Is Refused": ["'unbound sql'", ":missing_value", "no value", "name=value"],
    "A Background Launch Waited For Twice Is Refused": [
        # Launches 2 to 4 are the three refused for their agent counts (0, -5, and 'many', which Robot refuses
        # before Stampede sees it): a launch that did not run keeps its number.
        "background launch 1 of 'deduct' was already waited for: it is launch 5",
        "Wait for each background launch once",
    ],
    "A Wait Bound Of Zero Is Refused": ["timeout must be longer than 0 s", "got 0"],
    "Waiting For Something That Is Not A Background Launch Is Refused": [
        "Expected the handle Launch Agents In Background returns",
        "'deduct'",
    ],
}
QUICK = timedelta(seconds=5)
SECRET = "s3cret-pw"
WRONG_PASSWORD = "wrong-pw"


@pytest.fixture(scope="module")
def bad_input(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("bad_input"), ROBOT_DIR / "bad_input.robot")


@pytest.fixture(scope="module")
def refusing_postgres() -> Iterator[EmbeddedPostgres]:
    """A running PostgreSQL whose password the suite does not know."""
    server = EmbeddedPostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def unreachable_port() -> int:
    return closed_port()


@pytest.fixture(scope="module")
def bad_services(
    tmp_path_factory: pytest.TempPathFactory, refusing_postgres: EmbeddedPostgres, unreachable_port: int
) -> RobotRun:
    """Both service suites in one run: ${PG_DSN} is the wrong login; the other suite names its own address."""
    return run_robot(
        tmp_path_factory.mktemp("bad_services"),
        ROBOT_DIR / "services",
        variables={
            "PG_DSN": f"postgresql://postgres:{WRONG_PASSWORD}@127.0.0.1:{refusing_postgres.port}/postgres",
            "PASSWORD": SECRET,
            "CLOSED_PORT": str(unreachable_port),
        },
    )


def test_bad_input_suite_has_exactly_the_expected_tests(bad_input: RobotRun) -> None:
    assert bad_input.suite.setup.status == "PASS", bad_input.suite.setup.message
    assert set(bad_input.tests) == set(BAD_INPUT)
    assert bad_input.returncode == len(BAD_INPUT), bad_input.console


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_fails_at_once_saying_what_to_fix(bad_input: RobotRun, name: str) -> None:
    test = bad_input.test(name)
    assert test.status == "FAIL", f"{name} should fail but {test.status}"
    message = test.message.lower().replace("_", " ")
    missing = [part for part in BAD_INPUT[name] if part.lower().replace("_", " ") not in message]
    assert not missing, f"{missing} not in: {test.message}"
    assert test.elapsed_time < QUICK, f"{name} took {test.elapsed_time}"


def test_nothing_left_behind_by_bad_input(bad_input: RobotRun) -> None:
    assert_nothing_left_behind(bad_input)


def test_unreachable_server_fails_the_suite_fast_naming_the_masked_address(
    bad_services: RobotRun, unreachable_port: int
) -> None:
    suite = bad_services.child_suite("Unreachable Postgres")
    assert suite.setup.status == "FAIL"
    message = suite.setup.message
    for part in (
        f"Cannot reach PostgreSQL at postgresql://postgres:***@127.0.0.1:{unreachable_port}/postgres",
        "connection refused",
        "STAMPEDE_PG_DSN",
        "${PG_DSN}",
    ):
        assert part in message, f"{part!r} not in: {message}"
    assert suite.setup.elapsed_time < QUICK, suite.setup.elapsed_time
    assert all(test.status == "FAIL" for test in suite.tests)


def test_refused_login_fails_the_suite_saying_so(bad_services: RobotRun, refusing_postgres: EmbeddedPostgres) -> None:
    suite = bad_services.child_suite("Wrong Password")
    assert suite.setup.status == "FAIL"
    message = suite.setup.message
    for part in (
        f"PostgreSQL at postgresql://postgres:***@127.0.0.1:{refusing_postgres.port}/postgres",
        "refused the login for user 'postgres'",
        "check the user and password",
    ):
        assert part in message, f"{part!r} not in: {message}"
    assert suite.setup.elapsed_time < QUICK, suite.setup.elapsed_time
    assert all(test.status == "FAIL" for test in suite.tests)


def test_the_service_failures_fail_the_run(bad_services: RobotRun) -> None:
    assert bad_services.returncode == 2, bad_services.console
    assert bad_services.suite.status == "FAIL"


@pytest.mark.parametrize("secret", [SECRET, WRONG_PASSWORD])
def test_passwords_appear_nowhere_in_the_output(bad_services: RobotRun, secret: str) -> None:
    assert_nowhere_in_outputs(bad_services, secret)


def test_the_password_search_reads_every_output(bad_services: RobotRun, unreachable_port: int) -> None:
    """The search above is not vacuous: it finds the masked address, which every output does show."""
    shown = f"postgresql://postgres:***@127.0.0.1:{unreachable_port}/postgres"
    texts = bad_services.output_texts()
    assert {"output.xml", "log.html (decoded strings)", "console.txt"} <= texts.keys()
    assert all(shown in texts[name] for name in ("output.xml", "log.html (decoded strings)", "console.txt"))
    with pytest.raises(AssertionError, match="appears in"):
        assert_nowhere_in_outputs(bad_services, shown)


def test_nothing_left_behind_by_bad_services(bad_services: RobotRun) -> None:
    assert_nothing_left_behind(bad_services)
