"""The Python tool's contract, with in-memory agent objects: loading, the return shape, threads, and every misuse.

No service is involved (the objects touch none); the PostgreSQL side is in
tests/integration/test_user_code_tools.py.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from stampede.agents import OpResult
from stampede.errors import ConfigurationError
from stampede.launcher import LaunchPlan, LaunchResult, launch
from stampede.outcomes import Outcome
from stampede.workloads.python_tool import BAD_RESULT, PythonTool, ServiceEndpoints, operation_result

OBJECTS = '''
import asyncio
import threading

from stampede.outcomes import ConflictError


class Recorder:
    """Returns what it saw of its context; counts setups and teardowns."""

    opened = []
    closed = []

    def __init__(self, context):
        self.context = context

    async def setup(self):
        Recorder.opened.append(self.context.agent)

    async def run(self):
        c = self.context
        return {"read": {"agent": c.agent, "user": c.user, "marker": c.marker, "iteration": c.iteration,
                         "size": c.settings["size"]}, "timings": {"think": 5}}

    def teardown(self):
        Recorder.closed.append(self.context.agent)


class Blocking:
    """A plain run(): it must run off the loop, in one thread per agent."""

    def __init__(self, context):
        self.threads = set()

    def run(self):
        self.threads.add(threading.get_ident())
        asyncio.get_running_loop()  # raises RuntimeError: no loop in this thread


class PlainInThread:
    def __init__(self, context):
        self.threads = set()

    def run(self):
        self.threads.add(threading.current_thread().name)
        return {"written": sorted(self.threads)}


class Conflicted:
    calls = 0

    def __init__(self, context):
        pass

    async def run(self):
        Conflicted.calls += 1
        raise ConflictError("version_mismatch")


class Raising:
    def __init__(self, context):
        raise LookupError("no account for this agent")

    async def run(self):
        return None


class Returns42:
    def __init__(self, context):
        pass

    async def run(self):
        return 42


def make(context):
    return PlainInThread(context)


def make_nothing(context):
    return object()


def two_arguments(context, other):
    return None


class RunTakesArgs:
    def __init__(self, context):
        pass

    def run(self, iteration):
        return None


class NoRun:
    def __init__(self, context):
        pass


class FailingSetup:
    def __init__(self, context):
        self.dsn = context.services.postgres_dsn

    async def setup(self):
        raise ConnectionError(f"refused at {self.dsn}")

    async def run(self):
        return None


NOT_CALLABLE = 3
'''


@pytest.fixture
def objects(tmp_path: Path) -> str:
    path = tmp_path / "agent_objects.py"
    path.write_text(textwrap.dedent(OBJECTS), encoding="utf-8")
    return str(path)


def _launch(tool: PythonTool, agents: int = 3, iterations: int = 2) -> LaunchResult:
    return asyncio.run(launch(tool, LaunchPlan(agents=agents, iterations=iterations, operation_timeout=5)))


def test_each_agent_gets_its_own_object_with_its_context_and_settings(objects: str) -> None:
    tool = PythonTool(name="record", factory=f"{objects}:Recorder", settings={"size": "7"})
    result = _launch(tool)
    assert not result.agent_errors
    reads = sorted((op.read["agent"], op.read["iteration"]) for op in result.history)
    assert reads == [(agent, iteration) for agent in (1, 2, 3) for iteration in (0, 1)]
    assert {op.read["user"] for op in result.history} == {"user-1", "user-2", "user-3"}
    assert len({op.read["marker"] for op in result.history}) == 3
    assert all(op.read["size"] == "7" and op.timings == {"think": 5} and op.ok for op in result.history)
    recorder = tool.factory
    assert sorted(recorder.opened) == [1, 2, 3] and sorted(recorder.closed) == [1, 2, 3]  # type: ignore[attr-defined]


def test_a_plain_run_goes_to_a_thread_of_the_agents_own(objects: str) -> None:
    result = _launch(PythonTool(name="plain", factory=f"{objects}:make"), agents=3, iterations=3)
    assert all(op.ok for op in result.history)
    last = {op.agent: op.written for op in result.history}
    assert all(len(threads) == 1 for threads in last.values()), "one thread for all of an agent's calls"
    assert len({threads[0] for threads in last.values()}) == 3, "a thread per agent"
    assert all(threads[0].startswith("stampede-agent-") for threads in last.values())


def test_a_plain_run_does_not_block_the_loop(objects: str) -> None:
    result = _launch(PythonTool(name="blocking", factory=f"{objects}:Blocking"), agents=2, iterations=1)
    assert {op.error for op in result.history} == {"RuntimeError"}, "no running loop in the agent's thread"


def test_what_run_raises_is_classified_and_conflicts_are_retried(objects: str) -> None:
    from stampede.retry import RetryPolicy

    tool = PythonTool(name="conflicted", factory=f"{objects}:Conflicted", retry=RetryPolicy(2, 0.0, 0.0))
    result = _launch(tool, agents=1, iterations=1)
    (op,) = result.history
    assert (op.outcome, op.error, op.retries, op.exhausted) == (Outcome.CONFLICT, "version_mismatch", 2, True)


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (None, (Outcome.OK, None, None, None)),
        ({"outcome": "serialization failure", "error": "40001"}, (Outcome.SERIALIZATION_FAILURE, "40001", None, None)),
        ({"read": {"a": 1}, "written": [2]}, (Outcome.OK, None, {"a": 1}, [2])),
        (OpResult(Outcome.DEADLOCK, error="40P01"), (Outcome.DEADLOCK, "40P01", None, None)),
    ],
)
def test_the_return_shapes_become_records(returned: object, expected: tuple[object, ...]) -> None:
    result = operation_result(returned, "run()")
    assert (result.outcome, result.error, result.read, result.written) == expected


def test_timings_are_nanoseconds_or_timedeltas() -> None:
    result = operation_result({"timings": {"connect": 1500, "query": timedelta(milliseconds=2)}}, "run()")
    assert result.timings == {"connect": 1500, "query": 2_000_000}


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (42, r"returned int 42: return None, an OpResult, or a dict with any of outcome, error, read"),
        ({"reads": {}}, r"returned a dict with 'reads': its keys are outcome, error, read, written, timings"),
        ({"outcome": "fine"}, r"returned outcome 'fine': use one of ok, conflict, serialization_failure"),
        ({"timings": {"connect": 0.5}}, r"timing 'connect' = 0.5: give whole nanoseconds"),
    ],
)
def test_a_return_of_another_shape_says_which_shape_to_return(returned: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        operation_result(returned, "run()")


def test_a_run_returning_another_shape_fails_the_launch_after_recording_it(objects: str) -> None:
    result = _launch(PythonTool(name="wrong", factory=f"{objects}:Returns42"), agents=2, iterations=3)
    assert [op.error for op in result.history] == [BAD_RESULT, BAD_RESULT], "each agent stops at its first"
    assert "returned int 42" in result.agent_errors[0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("agent_objects", r"does not name a factory\. Write module:factory"),
        ("no_such_module_anywhere:Tool", r"there is no module 'no_such_module_anywhere' on the Python path\. Put its"),
        ("/no/such/file.py:Tool", r"there is no file /no/such/file\.py"),
        ("{objects}:Recorderr", r"has no attribute 'Recorderr'; it defines .*Recorder.*Check the spelling"),
        ("{objects}:NOT_CALLABLE", r"is a int, not a factory"),
        ("{objects}:two_arguments", r"takes \(context, other\); it must take exactly one argument"),
        ("{objects}:NoRun", r"class .*NoRun has no run\(\) method"),
        ("{objects}:RunTakesArgs", r"run\(self, iteration\) must take no arguments besides self"),
    ],
)
def test_a_factory_that_cannot_work_is_refused_when_defined(objects: str, spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"^Python tool 'bad': .*{message}"):
        PythonTool(name="bad", factory=spec.format(objects=objects))


def test_a_module_that_does_not_import_is_refused_with_its_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken_tools.py"
    broken.write_text("class Tool:\n    def run(self)\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"importing .*broken_tools\.py failed with SyntaxError: .*line 2"):
        PythonTool(name="bad", factory=f"{broken}:Tool")
    imports_missing = tmp_path / "needs_missing.py"
    imports_missing.write_text("import no_such_dependency_xyz\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"failed with ModuleNotFoundError: No module named 'no_such_dep"):
        PythonTool(name="bad", factory=f"{imports_missing}:Tool")


def test_a_factory_that_raises_fails_the_launch_naming_the_agent_and_the_error(objects: str) -> None:
    result = _launch(PythonTool(name="raising", factory=f"{objects}:Raising"), agents=2)
    assert not result.history
    assert result.agent_errors[1] == (
        f"could not start: StampedeError: Python tool 'raising': the factory {objects}:Raising raised "
        "LookupError: no account for this agent"
    )


def test_a_factory_returning_an_object_without_run_fails_the_launch(objects: str) -> None:
    result = _launch(PythonTool(name="empty", factory=f"{objects}:make_nothing"), agents=1)
    assert "the object" in result.agent_errors[1] and "has no run() method" in result.agent_errors[1]


def test_a_failing_setup_is_reported_without_the_password(objects: str) -> None:
    services = ServiceEndpoints(postgres_dsn="postgresql://app:s3cret-pw@db.example:5432/app")
    result = _launch(PythonTool(name="setup", factory=f"{objects}:FailingSetup", services=services), agents=1)
    error = result.agent_errors[1]
    assert "setup() of agent 1 raised ConnectionError: refused at postgresql://app:***@db.example" in error
    assert "s3cret-pw" not in error and "s3cret-pw" not in repr(services)


def test_secret_looking_settings_are_masked_in_the_description(objects: str) -> None:
    tool = PythonTool(name="record", factory=f"{objects}:Recorder", settings={"size": "7", "api_token": "abc"})
    assert tool.describe()["setting size"] == "7" and tool.describe()["setting api_token"] == "***"


def test_plain_hooks_share_the_agents_thread(objects: str, tmp_path: Path) -> None:
    module = tmp_path / "hooks.py"
    module.write_text(
        textwrap.dedent(
            """
            import threading

            class Hooks:
                seen = {}

                def __init__(self, context):
                    self.agent = context.agent

                def setup(self):
                    Hooks.seen.setdefault(self.agent, set()).add(threading.get_ident())

                def run(self):
                    Hooks.seen[self.agent].add(threading.get_ident())

                def teardown(self):
                    Hooks.seen[self.agent].add(threading.get_ident())
            """
        ),
        encoding="utf-8",
    )
    tool = PythonTool(name="hooks", factory=f"{module}:Hooks")
    _launch(tool, agents=2, iterations=2)
    seen = tool.factory.seen  # type: ignore[attr-defined]
    assert all(len(threads) == 1 for threads in seen.values()) and threading.get_ident() not in seen[1]


def test_a_plain_run_that_overruns_is_a_timeout_and_its_thread_cannot_hold_the_process(tmp_path: Path) -> None:
    module = tmp_path / "sleepy.py"
    module.write_text(
        textwrap.dedent(
            """
            import threading
            import time

            class Sleepy:
                threads = []

                def __init__(self, context):
                    pass

                def run(self):
                    Sleepy.threads.append(threading.current_thread())
                    time.sleep(5)
            """
        ),
        encoding="utf-8",
    )
    tool = PythonTool(name="sleepy", factory=f"{module}:Sleepy")
    plan = LaunchPlan(agents=2, iterations=1, operation_timeout=0.2)
    result = asyncio.run(launch(tool, plan))
    assert [(op.outcome, op.error) for op in result.history] == [(Outcome.TIMEOUT, "operation_timeout")] * 2
    assert result.wall_seconds < 4, "the launch does not wait for the stuck calls (each sleeps 5 s)"
    assert all(thread.daemon for thread in tool.factory.threads)  # type: ignore[attr-defined]
