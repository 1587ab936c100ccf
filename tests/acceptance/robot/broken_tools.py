"""Python tools that cannot work, for the must-fail twins of suites/tool_conflicts/10__user_code_tools.robot."""

from __future__ import annotations

from typing import Any


def two_arguments(context: Any, account: int) -> None:
    """A factory must take the agent's context only."""


class Raising:
    """Its factory raises for every agent."""

    def __init__(self, context: Any) -> None:
        raise LookupError(f"no account for agent {context.agent}")

    async def run(self) -> None:
        return None
