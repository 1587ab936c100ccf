"""Keywords that prepare data and define the tools agents run."""

from __future__ import annotations

from datetime import timedelta

from robot.api.deco import keyword

from stampede.retry import RetryPolicy
from stampede.workloads.credits import CreditDeductionTool, Strategy, create_accounts
from stampede.workloads.isolation import IsolationLevel
from stampede.workloads.json_config import ConfigStrategy, JsonConfigTool, create_config
from stampede.workloads.sql_tool import SqlTool

from ..component import LibraryComponent


def retry_policy(max_retries: int, backoff: timedelta, max_backoff: timedelta) -> RetryPolicy:
    """The retry policy of a tool defined with ``max_retries``, ``backoff`` and ``max_backoff``."""
    return RetryPolicy(max_retries, backoff.total_seconds(), max_backoff.total_seconds())


class WorkloadKeywords(LibraryComponent):
    @keyword(tags=["workloads"])
    def create_credit_account(self, balance: int = 10_000) -> int:
        """Creates an account holding ``balance`` credits in this run's schema and returns its id.

        | ${account}= | Create Credit Account | balance=10000 |
        """
        (account,) = self.create_credit_accounts(1, balance)
        return account

    @keyword(tags=["workloads"])
    def create_credit_accounts(self, count: int, balance: int = 10_000) -> list[int]:
        """Creates ``count`` accounts holding ``balance`` credits each and returns their ids.

        | ${accounts}= | Create Credit Accounts | 10 | balance=10000 |
        """
        accounts = self.runtime.run(create_accounts(self.runtime.postgres, count, balance))
        self.log(f"Accounts {accounts} hold {balance} credits each.")
        return accounts

    @keyword(tags=["workloads"])
    def create_json_configuration(self) -> int:
        """Creates an empty JSON configuration document (with a version column) and returns its id.

        | ${config}= | Create JSON Configuration |
        """
        return self.runtime.run(create_config(self.runtime.postgres))

    @keyword(tags=["workloads"])
    def define_credit_deduction_tool(
        self,
        name: str,
        *,
        strategy: Strategy = Strategy.ATOMIC,
        isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
        accounts: int | list[int] = 1,
        amount: int = 1,
        max_retries: int = 20,
        backoff: timedelta = timedelta(milliseconds=2),
        max_backoff: timedelta = timedelta(milliseconds=100),
        think_time: timedelta = timedelta(0),
    ) -> None:
        """Defines a tool that deducts ``amount`` credits from one of ``accounts`` per operation.

        ``strategy`` is how the deduction is done:
        - ``naive``: read the balance, write balance − amount; no guard, no retry.
        - ``atomic``: one ``UPDATE … SET balance = balance − amount``.
        - ``optimistic``: read balance and version, write only if the version is unchanged.
        - ``for update``: ``SELECT … FOR UPDATE``, then write.
        - ``serializable retry``: read-modify-write that retries serialization failures (40001).

        Each runs in a transaction at ``isolation`` (``read committed``,
        ``repeatable read`` or ``serializable``). All but ``naive`` retry
        conflicts up to ``max_retries`` times, waiting a random time up to
        ``backoff`` × 2^n, capped at ``max_backoff`` (exponential backoff with full
        jitter). ``think_time`` is a pause between read and write that widens the race.

        ``accounts`` is one account id or a list; each operation picks one at
        random, so a list spreads the contention.

        | Define Credit Deduction Tool | deduct | strategy=optimistic | isolation=serializable | accounts=${account} |
        """
        self.runtime.tools[name] = CreditDeductionTool(
            self.runtime.postgres,
            name=name,
            strategy=strategy,
            isolation=isolation,
            accounts=accounts if isinstance(accounts, list) else [accounts],
            amount=amount,
            retry=retry_policy(max_retries, backoff, max_backoff),
            think_time=think_time.total_seconds(),
        )

    @keyword(tags=["workloads"])
    def define_json_configuration_tool(
        self,
        name: str,
        config: int,
        *,
        strategy: ConfigStrategy = ConfigStrategy.OPTIMISTIC,
        isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
        max_retries: int = 20,
        backoff: timedelta = timedelta(milliseconds=2),
        max_backoff: timedelta = timedelta(milliseconds=100),
    ) -> None:
        """Defines a tool where each agent sets its own field (``agent_<n>``) of JSON configuration ``config``.

        ``optimistic`` writes only when the version it read is still current and
        retries otherwise (backoff as in `Define Credit Deduction Tool`);
        ``last writer wins`` writes the whole document back unguarded.

        | Define JSON Configuration Tool | update config | ${config} | strategy=optimistic |
        """
        self.runtime.tools[name] = JsonConfigTool(
            self.runtime.postgres,
            name=name,
            strategy=strategy,
            isolation=isolation,
            config=config,
            retry=retry_policy(max_retries, backoff, max_backoff),
        )

    @keyword(tags=["workloads"])
    def define_sql_tool(
        self,
        name: str,
        sql: str,
        *,
        isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
        max_retries: int = 0,
        **constants: str,
    ) -> None:
        """Defines a tool that runs one SQL statement per operation, in a transaction at ``isolation``.

        Parameters are written ``:name``. Built in: ``:agent`` and ``:iteration``
        (integers), ``:user`` and ``:marker`` (text). Any other parameter is
        given as ``name=value`` and converted to the type PostgreSQL expects.
        The statement is prepared at once, so a syntax error or an unknown table
        fails here, naming the tool. Conflicts (40001, 40P01, 55P03) are retried
        up to ``max_retries`` times.

        SQL containing ``=`` must come from a variable (or write ``\\=``), or Robot
        reads it as a named argument.

        | ${sql}= | Set Variable | UPDATE seats SET taken_by = :user WHERE id = :seat AND taken_by IS NULL |
        | Define SQL Tool | reserve | ${sql} | seat=7 |
        """
        tool = SqlTool(
            self.runtime.postgres,
            name=name,
            sql=sql,
            constants=constants,
            isolation=isolation,
            retry=RetryPolicy(max_retries=max_retries),
        )
        self.runtime.run(tool.validate())
        self.runtime.tools[name] = tool
