"""What the bundled reference agent service can be started with, as the service itself describes it.

The engine does not import the service: it asks it once per process
(``python -m reference_agent_service --describe``) for its bug switches and
settings, and checks a suite's choices against that answer before starting it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import ConfigurationError, ServiceUnavailable

MODULE = "reference_agent_service"
DESCRIBE_TIMEOUT = 30.0
LIBRARIES = Path(__file__).resolve().parents[2]
"""The folder holding the engine; the reference service's package sits beside it."""


def python_path() -> str:
    """``PYTHONPATH`` for a child that runs the service: the libraries folder first."""
    current = os.environ.get("PYTHONPATH")
    return f"{LIBRARIES}{os.pathsep}{current}" if current else str(LIBRARIES)


def _normalized(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


@dataclass(frozen=True)
class Setting:
    default: int
    minimum: int
    help: str


@dataclass(frozen=True)
class ReferenceServiceOptions:
    """The bug switches (name → what it does) and settings (name → default, minimum) the service offers."""

    bugs: Mapping[str, str]
    settings: Mapping[str, Setting]

    def parse_bugs(self, value: str | Iterable[str] | None) -> frozenset[str]:
        """The switches ``value`` names (``"leak, reorder"``, ``["never answer"]``; ``""`` or ``none``: no bug).

        Case, ``-``, ``_`` and spaces do not matter; an unknown switch raises
        ConfigurationError naming the known ones.
        """
        names = value.split(",") if isinstance(value, str) else list(value or ())
        found: set[str] = set()
        for name in names:
            text = _normalized(str(name))
            if text in ("", "none"):
                continue
            if text not in self.bugs:
                known = ", ".join(self.bugs)
                raise ConfigurationError(
                    f"Unknown agent service bug switch {str(name).strip()!r}: known switches are {known} "
                    "(comma-separated, e.g. leak,reorder; or none)."
                )
            found.add(text)
        return frozenset(found)

    def complete_settings(self, given: Mapping[str, int]) -> dict[str, int]:
        """Every setting, ``given`` over the defaults; a wrong name or too small a value raises ConfigurationError."""
        unknown = [name for name in given if name not in self.settings]
        if unknown:
            raise ConfigurationError(
                f"The reference agent service has no setting {', '.join(unknown)}: its settings are "
                f"{', '.join(self.settings)}."
            )
        chosen = {name: given.get(name, spec.default) for name, spec in self.settings.items()}
        for name, value in chosen.items():
            minimum = self.settings[name].minimum
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigurationError(
                    f"Agent service setting {name} must be a whole number of at least {minimum}, got {value!r}"
                )
        return chosen

    def argv(self, bugs: Iterable[str], settings: Mapping[str, int]) -> list[str]:
        """The service's command-line options for ``bugs`` and ``settings`` (in a stable order)."""
        chosen = set(bugs)
        argv = ["--bugs", ",".join(name for name in self.bugs if name in chosen) or "none"]
        for name, value in settings.items():
            argv += ["--" + name.replace("_", "-"), str(value)]
        return argv


@cache
def reference_options() -> ReferenceServiceOptions:
    """Ask the reference service what it offers (once per process, bounded by :data:`DESCRIBE_TIMEOUT`)."""
    command = [sys.executable, "-m", MODULE, "--describe"]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=DESCRIBE_TIMEOUT,
            env={**os.environ, "PYTHONPATH": python_path()},
            check=False,
        )
        described = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError) as error:
        raise ServiceUnavailable(f"Could not ask the reference agent service for its options ({error}).") from None
    if not isinstance(described, dict):
        raise ServiceUnavailable(
            f"`{' '.join(command[1:])}` failed (exit code {done.returncode}): {done.stderr.strip()[-500:]}. "
            f"Is the {MODULE} package beside the stampede package in {LIBRARIES}?"
        )
    return ReferenceServiceOptions(
        bugs=dict(described["bugs"]),
        settings={name: Setting(**spec) for name, spec in described["settings"].items()},
    )
