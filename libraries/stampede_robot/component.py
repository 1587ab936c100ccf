"""Base of every keyword component: access to the shared runtime and to Robot's context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robot.api import logger
from robot.libraries.BuiltIn import BuiltIn, RobotNotRunningError

from .runtime import Runtime


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
        return Path(self.variable("OUTPUT DIR", "results"))

    @staticmethod
    def log_html(html: str) -> None:
        logger.info(html, html=True)

    @staticmethod
    def log(message: str) -> None:
        logger.info(message)
