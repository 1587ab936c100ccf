"""Keywords that define tools from the suite's own code: a Python factory, or SQL statements in one transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from robot.api.deco import keyword

from stampede.workloads.isolation import IsolationLevel
from stampede.workloads.python_tool import PythonTool, ServiceEndpoints
from stampede.workloads.sql_transaction_tool import SqlTransactionTool

from ..component import LibraryComponent
from .workloads import retry_policy


class UserCodeToolKeywords(LibraryComponent):
    def _endpoints(self) -> ServiceEndpoints:
        services = self.runtime.services
        if services is None:
            return ServiceEndpoints()
        return ServiceEndpoints(
            postgres_dsn=services.postgres.client_dsn() if services.postgres is not None else None,
            redis_url=services.redis.url if services.redis is not None else None,
            redis_prefix=services.redis.prefix if services.redis is not None else None,
            agent_service_url=services.agent_service.url if services.agent_service is not None else None,
            agent_service_http_url=services.agent_service.http_url if services.agent_service is not None else None,
        )

    @keyword(tags=["workloads"])
    def define_python_tool(
        self,
        name: str,
        factory: str,
        *,
        max_retries: int = 0,
        backoff: timedelta = timedelta(milliseconds=2),
        max_backoff: timedelta = timedelta(milliseconds=100),
        **settings: Any,
    ) -> None:
        """Defines a tool from Python code of your own: one object per agent, whose ``run()`` is one operation.

        ``factory`` is ``module:name`` (the module on the Python path, e.g.
        ``robot --pythonpath .``) or ``path/to/file.py:name``. It is called
        once per agent, before the start barrier, with the agent's context and
        returns the agent's object (a class is the usual factory, like a
        Locust user class). The context has ``agent`` (1 to N), ``user``,
        ``marker`` (unique to the agent in this launch), ``iteration`` (the
        operation it is on), ``settings`` (every other ``name=value`` given
        here) and ``services``: ``postgres_dsn`` (lands in this run's schema,
        so tables made with `Execute SQL` are there and the run's clean-up ends
        its connections), ``redis_url`` and ``redis_prefix`` (keep keys under
        it), ``agent_service_url`` and ``agent_service_http_url`` (its WebSocket
        and HTTP addresses): the services in use when the tool is defined,
        None for one not in use. They carry passwords: never log them.

        The object:
        - ``run()`` (required) does one operation. ``async def`` runs on the
          engine's event loop; a plain ``def`` runs in a thread of the agent's
          own (a daemon, the same for all its calls), so a blocking client does
          not stall the other agents.
        - ``setup()`` and ``teardown()`` (optional, async or plain) run per
          agent before its first operation and after its last.

        What ``run()`` returns is the operation's record: ``None`` (ok), or a
        dict with any of ``outcome`` (``ok`` by default, ``conflict``,
        ``serialization_failure``, ``deadlock``, ``timeout``, ``error``),
        ``error`` (a short code), ``read`` and ``written`` (what it read and
        wrote: `No Update Should Be Lost` groups on ``read`` keys ``account``
        and ``balance``), ``timings`` (phase to nanoseconds or a timedelta).
        What it raises is classified as for every tool: an error with a
        SQLSTATE (asyncpg, psycopg) by its code, 40001 a serialization
        failure, 40P01 a deadlock; ``TimeoutError`` a timeout; anything else an
        error named by its class. Conflicts are retried up to ``max_retries``
        times with backoff as in `Define Credit Deduction Tool`.

        The module, the name and the shape of the factory and of ``run()`` are
        checked here, so a typo fails now, saying what to fix. A factory or a
        hook that raises fails the launch, naming the agent; a ``run()`` that
        returns something else fails it too, after recording the operations as
        ``bad_result``.

        A complete example: ``credit_tools.py`` next to the suite holds

        | import asyncpg
        |
        | class AtomicDeduction:
        |     def __init__(self, context):
        |         self.dsn = context.services.postgres_dsn
        |         self.account = int(context.settings["account"])
        |
        |     async def setup(self):
        |         self.db = await asyncpg.connect(self.dsn)
        |
        |     async def run(self):
        |         before = await self.db.fetchval(
        |             "UPDATE accounts SET balance = balance - 1 WHERE id = $1 RETURNING balance + 1", self.account)
        |         return {"read": {"account": self.account, "balance": before}}
        |
        |     async def teardown(self):
        |         await self.db.close()

        and the suite says

        | ${account}= | Create Credit Account | balance=1000 |
        | Define Python Tool | deduct | ${CURDIR}/credit_tools.py:AtomicDeduction | account=${account} |
        | Launch Agents | deduct | 20 | iterations=5 |
        | No Update Should Be Lost |
        """
        self.runtime.tools[name] = PythonTool(
            name=name,
            factory=factory,
            settings=settings,
            services=self._endpoints(),
            retry=retry_policy(max_retries, backoff, max_backoff),
        )

    @keyword(tags=["workloads"])
    def define_sql_transaction_tool(
        self,
        name: str,
        *statements: str,
        isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
        max_retries: int = 20,
        backoff: timedelta = timedelta(milliseconds=2),
        max_backoff: timedelta = timedelta(milliseconds=100),
        **constants: str,
    ) -> None:
        """Defines a tool that runs ``statements`` in order, in one transaction at ``isolation``, per operation.

        Each statement is an argument of its own. Parameters are written
        ``:name`` as in `Define SQL Tool`: ``:agent``, ``:iteration``,
        ``:user``, ``:marker``, constants given as ``name=value``, and every
        column an earlier statement returned (its first row): ``SELECT
        balance, version ...`` makes ``:balance`` and ``:version`` usable by the
        statements after it, with the column's type. The constants used and
        the columns returned are the operation's ``read`` values, which
        `No Update Should Be Lost` judges (give it ``subject=`` and
        ``version=`` unless they are ``account`` and ``balance``).

        A statement that returns no row and changes none ends the attempt as
        a conflict: the transaction is rolled back and retried, as it is on a
        serialization failure (40001) or a deadlock (40P01). That is how a
        version check says another agent wrote first. Retries: up to
        ``max_retries``, waiting a random time up to ``backoff`` × 2^n, capped at
        ``max_backoff``.

        Every statement is prepared here, in order, so a syntax error or an
        unknown column fails now, naming the statement's number.

        SQL holding ``=`` must come from a variable (or write ``\\=``), or Robot
        reads it as a named argument; a list variable keeps one statement per
        item:

        | *** Variables ***
        | @{BUMP}    SELECT n, version FROM counters WHERE id = :id
        | ...        UPDATE counters SET n = :n + 1, version = :version + 1 WHERE id = :id AND version = :version
        |
        | *** Test Cases ***
        | A Version Check Keeps Every Increment
        |     Define SQL Transaction Tool    bump    @{BUMP}    id=1    isolation=read committed
        |     Launch Agents    bump    20
        |     No Update Should Be Lost    subject=id    version=version
        """
        tool = SqlTransactionTool(
            self.runtime.postgres,
            name=name,
            statements=statements,
            constants=constants,
            isolation=isolation,
            retry=retry_policy(max_retries, backoff, max_backoff),
        )
        self.runtime.run(tool.validate())
        self.runtime.tools[name] = tool
