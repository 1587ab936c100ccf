"""Keywords that run SQL of the suite's own in this run's schema (set-up and checks of state)."""

from __future__ import annotations

import json
from typing import Any

from robot.api.deco import keyword

from ..component import LibraryComponent
from ..html import table


class DatabaseKeywords(LibraryComponent):
    async def _execute(self, sql: str) -> str:
        connection = await self.runtime.postgres.connect()
        try:
            return await connection.execute(sql)
        finally:
            await connection.close()

    @keyword(tags=["database"])
    def execute_sql(self, sql: str) -> str:
        """Runs SQL (one or more statements) in this run's schema and returns the last command's status.

        | Execute SQL | CREATE TABLE seats (id int PRIMARY KEY, taken_by text) |
        | Execute SQL | INSERT INTO seats SELECT g, NULL FROM generate_series(1, 20) g |
        """
        status = self.runtime.run(self._execute(sql))
        self.log(f"{status}: {sql}")
        return status

    @keyword(tags=["database"])
    def query(self, sql: str) -> list[dict[str, Any]]:
        """Runs a query in this run's schema and returns its rows as dictionaries (logged as a table).

        | ${rows}= | Query | SELECT count(*) AS taken FROM seats WHERE taken_by IS NOT NULL |
        | Should Be Equal As Integers | ${rows}[0][taken] | 20 |
        """
        rows = self.runtime.run(self.runtime.postgres.fetch(sql))
        headers = list(rows[0]) if rows else ["(no rows)"]
        self.log_html(table(headers, ([json.dumps(r[h], default=str) for h in headers] for r in rows), sql))
        return rows
