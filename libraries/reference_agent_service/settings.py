"""Tunables of the reference agent service: its command-line options, and what ``--describe`` tells a harness."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Self

from .errors import ConfigurationError

PG_DSN_ENV = "AGENT_SERVICE_PG_DSN"
REDIS_URL_ENV = "AGENT_SERVICE_REDIS_URL"
"""Where the PostgreSQL DSN and Redis URL are read from when not given as options: passwords stay out of ``ps``."""


def _tunable(default: int, help_text: str, minimum: int = 0) -> int:
    return field(default=default, metadata={"help": help_text, "minimum": minimum})


@dataclass(frozen=True)
class ServiceSettings:
    """How the service behaves; every field is a ``--dashed-name`` option of ``python -m reference_agent_service``."""

    think_ms: int = _tunable(50, "how long an agent 'thinks' before its tool runs")
    initial_credits: int = _tunable(1000, "credits a user starts with")
    run_cost: int = _tunable(1, "credits a run costs when the client gives no cost")
    session_ttl_ms: int = _tunable(30_000, "TTL of a session's Redis key (refreshed every third of it)", 300)
    resume_window_ms: int = _tunable(10_000, "how long a dropped session waits to be resumed")
    replay_buffer: int = _tunable(1000, "frames a session keeps to replay on resume", 1)
    lock_ttl_ms: int = _tunable(10_000, "TTL of a thread lock in Redis", 100)
    lock_wait_ms: int = _tunable(10_000, "how long a run waits for a lock before failing with lock_timeout")
    hello_timeout_ms: int = _tunable(10_000, "how long a new connection may take to send its hello", 1)
    pg_pool_size: int = _tunable(10, "PostgreSQL connections the service holds at most", 1)
    max_message_bytes: int = _tunable(64 * 2**20, "largest frame a client may send", 1024)
    finished_runs_kept: int = _tunable(
        1000, "ended HTTP runs whose events stay for a Last-Event-ID resume (and a cancel) after they end"
    )
    shutdown_timeout_ms: int = _tunable(5_000, "bound on each step of a graceful shutdown", 100)

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            minimum = spec.metadata["minimum"]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigurationError(
                    f"Agent service setting {spec.name} must be a whole number of at least {minimum}, got {value!r}"
                )

    def to_argv(self) -> list[str]:
        """The command-line options that reproduce these settings."""
        argv: list[str] = []
        for spec in fields(self):
            argv += [_option(spec.name), str(getattr(self, spec.name))]
        return argv

    @classmethod
    def describe(cls) -> dict[str, dict[str, object]]:
        """Each setting's default, minimum and help text, by name."""
        return {
            spec.name: {"default": spec.default, "minimum": spec.metadata["minimum"], "help": spec.metadata["help"]}
            for spec in fields(cls)
        }

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        for spec in fields(cls):
            parser.add_argument(
                _option(spec.name),
                type=int,
                default=spec.default,
                dest=spec.name,
                help=f"{spec.metadata['help']} (default {spec.default})",
            )

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace) -> Self:
        return cls(**{spec.name: getattr(namespace, spec.name) for spec in fields(cls)})


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")
