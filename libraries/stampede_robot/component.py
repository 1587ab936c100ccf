"""Base of every keyword component: access to the shared runtime and to Robot's context."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from robot.api import logger
from robot.libraries.BuiltIn import BuiltIn, RobotNotRunningError

from stampede.errors import ConfigurationError
from stampede.verdicts import Verdict

from .html import verdict_table
from .pabot import results_dir
from .reporting import current_scope, findings
from .runtime import LaunchRecord, Runtime, Scope

ToolT = TypeVar("ToolT")


class LibraryComponent:
    """Keywords live on subclasses; state lives in the runtime they share."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @staticmethod
    def variable(name: str, default: Any = None) -> Any:
        """A Robot variable's value (e.g. ``${PG_DSN}`` given with ``--variable``), or ``default``."""
        try:
            return BuiltIn().get_variable_value("${" + name + "}", default)
        except RobotNotRunningError:
            return default

    @property
    def output_dir(self) -> Path:
        """Where Stampede's files go: ``${OUTPUT DIR}`` (under pabot, the folder it merges into)."""
        return results_dir()

    @staticmethod
    def log_html(html: str) -> None:
        logger.info(html, html=True)

    @staticmethod
    def log(message: str) -> None:
        logger.info(message)

    @staticmethod
    def scope() -> Scope | None:
        """Where the keyword runs: the current test, or the current suite's setup or teardown (None outside Robot)."""
        return current_scope()

    def launch_record(self, launch: LaunchRecord | int | None) -> LaunchRecord:
        """``launch`` itself, the launch with that number, or (``None``) this test's latest launch.

        With none, it is the latest of the suite's setup; in a suite's setup or teardown, the suite's latest.
        A check never judges another test's launch unless handed it.
        """
        if isinstance(launch, LaunchRecord):
            return launch
        return self.runtime.current_launch(self.scope()) if launch is None else self.runtime.launch(launch)

    def launch_of(
        self, launch: LaunchRecord | int | None, kind: type[ToolT], described: str, defined_by: str
    ) -> tuple[LaunchRecord, ToolT]:
        """The launch and its tool, which must be a ``kind`` (``described`` as, say, "a work queue")."""
        record = self.launch_record(launch)
        if not isinstance(record.tool, kind):
            raise ConfigurationError(
                f"Launch {record.number} ran {record.tool.name!r}, not {described}: define one with {defined_by}."
            )
        return record, record.tool

    def judge(self, *verdicts: Verdict, caption: str | None = None) -> None:
        """Log the verdicts as one table and what each found; fail with every missed or inconclusive one's message.

        "Nothing to check" (inconclusive) fails too: it must never pass as a success.
        """
        caption = caption or verdicts[0].name
        findings.judged(caption, verdicts)
        self.log_html(verdict_table(verdicts, caption=caption))
        failed = [verdict.message for verdict in verdicts if not verdict.passed]
        for verdict in verdicts:
            if verdict.message and verdict.message not in failed:
                self.log(verdict.message)
        if failed:
            raise AssertionError(" ".join(failed))
