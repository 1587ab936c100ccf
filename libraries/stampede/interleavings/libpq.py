"""A session's connection as isolationtester has it: libpq's simple query protocol, text results, notices.

A step's SQL goes to the server as it is written, in one Query message (so a
step may hold several statements, which run as one implicit transaction when
no ``BEGIN`` is open), and every statement's result comes back as PostgreSQL's
own text: ``t``, ``2024-01-01 00:00:00+00``, ``{1,2}``. NOTICE and WARNING
messages, and NOTIFY messages, are kept in the order they arrive.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import pq

from ..errors import ServiceUnavailable
from ..services.postgres_target import PostgresTarget
from ..services.secrets import scrub
from .outcome import Notice, ResultSet

_FIELD = pq.DiagnosticField


@dataclass
class Result:
    """What one run of SQL gave back: its result sets and command tag, or the error that stopped it."""

    finished_ns: int
    results: list[ResultSet] = field(default_factory=list)
    status: str | None = None
    severity: str | None = None
    sqlstate: str | None = None
    error: str | None = None


class SessionConnection:
    """One libpq connection in the run's schema, with the notices and notifications it received."""

    def __init__(self, connection: psycopg.AsyncConnection[tuple[object, ...]], name: str) -> None:
        self.connection = connection
        self.name = name
        self.pgconn = connection.pgconn
        self.pid = self.pgconn.backend_pid
        self.encoding = connection.info.encoding
        self.notices: list[Notice] = []
        self.received = 0  # notices received in all, for blockers that wait for a number of them
        self.pgconn.notice_handler = self._notice

    @classmethod
    async def open(cls, target: PostgresTarget, name: str) -> SessionConnection:
        try:
            connection = await psycopg.AsyncConnection.connect(
                target.dsn,
                autocommit=True,
                application_name=target.application_name,
                options=f"-c search_path={target.schema},public",
                connect_timeout=max(1, round(target.connect_timeout)),
            )
        except psycopg.Error as error:
            raise ServiceUnavailable(
                f"Session {name} could not connect to PostgreSQL at {target.display_dsn}: "
                f"{scrub(str(error), target.dsn)}"
            ) from None
        return cls(connection, name)

    @property
    def in_transaction(self) -> bool:
        return self.pgconn.transaction_status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)

    @property
    def closed(self) -> bool:
        return self.pgconn.status != pq.ConnStatus.OK

    def take_notices(self) -> tuple[Notice, ...]:
        """The notices received since the last call, oldest first."""
        taken, self.notices = tuple(self.notices), []
        return taken

    def _text(self, value: bytes | None) -> str:
        return "" if value is None else value.decode(self.encoding, errors="replace")

    def _notice(self, result: pq.abc.PGresult) -> None:
        self.received += 1
        self.notices.append(
            Notice(
                self._text(result.error_field(_FIELD.SEVERITY)),
                self._text(result.error_field(_FIELD.MESSAGE_PRIMARY)),
                self._text(result.error_message),
            )
        )

    def _notifications(self, names: dict[int, str]) -> None:
        while (notify := self.pgconn.notifies()) is not None:
            sender = names.get(notify.be_pid, f"PID {notify.be_pid}")
            channel, payload = self._text(notify.relname), self._text(notify.extra)
            text = f'NOTIFY "{channel}" with payload "{payload}" from {sender}\n'
            self.notices.append(Notice("NOTIFY", f"{channel}: {payload}", text))

    async def execute(self, sql: str, names: dict[int, str] | None = None) -> Result:
        """Run ``sql`` as one simple query and collect every result; never raises for what the server says.

        ``names``: session names by backend pid, to say who sent a NOTIFY.
        """
        pgconn = self.pgconn
        results: list[pq.abc.PGresult] = []
        try:
            pgconn.send_query(sql.encode(self.encoding))
            while pgconn.flush():
                await self._ready(write=True)
            while True:
                while pgconn.is_busy():
                    await self._ready(write=False)
                    pgconn.consume_input()
                result = pgconn.get_result()
                if result is None:
                    break
                results.append(result)
            pgconn.consume_input()
        except psycopg.OperationalError as error:
            return Result(time.monotonic_ns(), error=f"{type(error).__name__}: {error}")
        self._notifications(names or {})
        return self._collect(results)

    def _collect(self, results: list[pq.abc.PGresult]) -> Result:
        collected = Result(time.monotonic_ns())
        for result in results:
            if result.status == pq.ExecStatus.FATAL_ERROR:
                collected.severity = self._text(result.error_field(_FIELD.SEVERITY)) or None
                collected.sqlstate = self._text(result.error_field(_FIELD.SQLSTATE)) or None
                primary = result.error_field(_FIELD.MESSAGE_PRIMARY)
                collected.error = self._text(primary) if primary else self._text(result.error_message).strip()
                continue
            columns = tuple(self._text(result.fname(i)) for i in range(result.nfields))
            rows = tuple(
                tuple(
                    None if (value := result.get_value(row, column)) is None else self._text(value)
                    for column in range(result.nfields)
                )
                for row in range(result.ntuples)
            )
            status = self._text(result.command_status)
            collected.results.append(ResultSet(columns, rows, status, result.status == pq.ExecStatus.TUPLES_OK))
            collected.status = status
        return collected

    async def _ready(self, write: bool) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        socket = self.pgconn.socket
        add, remove = (loop.add_writer, loop.remove_writer) if write else (loop.add_reader, loop.remove_reader)

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        add(socket, wake)
        try:
            await ready
        finally:
            remove(socket)

    async def close(self) -> None:
        """Close the connection; a query still running on it is cut off with it."""
        if not self.connection.closed:
            await self.connection.close()
