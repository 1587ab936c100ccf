"""What fills an agent's frame templates: its user, marker, thread and token, and a context of the configured size."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from typing import Any

from ..agents import AgentContext
from ..errors import ConfigurationError

TokenSource = Callable[[str], str] | Mapping[str, str] | str
"""A user's token: a function of the user id, a mapping user id → token, or one token for every user."""


def check_sendable(tokens: TokenSource | None, tool: str) -> None:
    """ConfigurationError, saying what to give instead, when ``tokens`` cannot be sent to a worker process."""
    try:
        pickle.dumps(tokens)
    except Exception:  # noqa: BLE001 - pickle raises what the object's own __reduce__ raises
        raise ConfigurationError(
            f"Tool {tool!r} cannot run on workers: its tokens ({type(tokens).__name__}) cannot be sent to a worker "
            "process. Give one token, a mapping of user id to token, a module-level function, or a "
            "stampede.services.tokens.TokenIssuer (what the Define … Agent Tool keywords sign with)."
        ) from None


class PlaceholderValues:
    """The value of each placeholder (see :mod:`~stampede.workloads.websocket_templates`) for an agent's frame.

    ``tokens`` gives each user's token (None: the protocol sends none);
    ``context_bytes`` sizes the ``{context}`` placeholder.
    """

    def __init__(self, tokens: TokenSource | None, context_bytes: int) -> None:
        self.tokens = tokens
        self.context_bytes = context_bytes

    def of(self, agent: AgentContext, *, request: str = "") -> dict[str, Any]:
        return {
            **self._fixed(agent),
            "text": f"message {agent.iteration} from {agent.user}",
            "context": self._context(agent),
            "request": request,
            "iteration": agent.iteration,
        }

    def _fixed(self, agent: AgentContext) -> dict[str, Any]:
        """The values that stay the same across the agent's runs, worked out at its first."""
        fixed: dict[str, Any] | None = agent.state.get("fixed_values")
        if fixed is None:
            fixed = agent.state["fixed_values"] = {
                "user": agent.user,
                "agent": agent.agent,
                "marker": agent.marker,
                "thread": f"thread-{agent.agent}",
                "token": self._token(agent),
            }
        return fixed

    def _token(self, agent: AgentContext) -> str | None:
        if self.tokens is None:
            return None
        if "token" not in agent.state:
            agent.state["token"] = self.token_for(agent.user)
        return agent.state["token"]

    def token_for(self, user: str) -> str | None:
        """``user``'s token (None when the protocol sends none); ConfigurationError for a user the mapping lacks."""
        tokens = self.tokens
        if tokens is None or isinstance(tokens, str):
            return tokens
        if isinstance(tokens, Mapping):
            if user not in tokens:
                raise ConfigurationError(
                    f"No token for user {user!r}: the tokens given cover "
                    f"{', '.join(sorted(map(str, tokens))[:10]) or 'no user'}"
                )
            return tokens[user]
        return tokens(user)

    def _context(self, agent: AgentContext) -> str:
        """``context_bytes`` of text (at least its head, which names the user, marker and run)."""
        head = f"Context of {agent.user} ({agent.marker}), run {agent.iteration}: "
        if self.context_bytes <= len(head):  # no padding: the head is at least as long in bytes as in characters
            return head
        return head + "x" * max(0, self.context_bytes - len(head.encode()))
