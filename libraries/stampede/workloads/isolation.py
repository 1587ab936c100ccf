"""PostgreSQL transaction isolation levels."""

from __future__ import annotations

from enum import Enum

from ..errors import ConfigurationError


class IsolationLevel(Enum):
    """``read committed``, ``repeatable read`` or ``serializable``."""

    READ_COMMITTED = "read committed"
    REPEATABLE_READ = "repeatable read"
    SERIALIZABLE = "serializable"

    @classmethod
    def parse(cls, value: IsolationLevel | str) -> IsolationLevel:
        """``value`` as an isolation level (case, ``_`` and spaces aside); ConfigurationError listing them, else."""
        if isinstance(value, IsolationLevel):
            return value
        wanted = " ".join(str(value).replace("_", " ").lower().split())
        for level in cls:
            if level.value == wanted:
                return level
        levels = ", ".join(repr(level.value) for level in cls)
        raise ConfigurationError(f"{value!r} is not an isolation level: write one of {levels}.")

    @property
    def asyncpg_name(self) -> str:
        return self.value.replace(" ", "_")
