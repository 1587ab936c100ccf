"""PostgreSQL transaction isolation levels."""

from __future__ import annotations

from enum import Enum


class IsolationLevel(Enum):
    """``read committed``, ``repeatable read`` or ``serializable``."""

    READ_COMMITTED = "read committed"
    REPEATABLE_READ = "repeatable read"
    SERIALIZABLE = "serializable"

    @property
    def asyncpg_name(self) -> str:
        return self.value.replace(" ", "_")
