"""TestServices: the PostgreSQL and Redis a suite runs against, embedded or your own."""

from __future__ import annotations

from typing import Any

from robot.api import logger
from robotlibcore import DynamicCore

from stampede import __version__
from stampede_robot.keywords.database import DatabaseKeywords
from stampede_robot.keywords.faults import FaultKeywords
from stampede_robot.keywords.mcp import McpServerKeywords
from stampede_robot.keywords.services import ServiceKeywords
from stampede_robot.reporting import ReportListener
from stampede_robot.runtime import runtime


class TestServices(DynamicCore):
    """Chooses, starts and cleans up the services Stampede's agents hit.

    = Where services come from =

    | = Service = | = Robot variable = | = Environment variable = | = When neither is set =          |
    | PostgreSQL  | ``${PG_DSN}``      | ``STAMPEDE_PG_DSN``       | embedded PostgreSQL on a free port |
    | Redis       | ``${REDIS_URL}``   | ``STAMPEDE_REDIS_URL``    | embedded Redis on a free port      |

    Each run works in its own PostgreSQL schema (``stampede_<run id>``) and Redis
    key prefix (``stampede:<run id>:``); both are removed when the suite that
    started the services ends, and embedded servers are stopped then too.
    Passwords never reach the log: addresses are shown masked.

    = Example =

    | *** Settings ***
    | Library           TestServices
    | Suite Setup       Use PostgreSQL
    """

    __test__ = False  # not a pytest test class, despite its name
    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    ROBOT_LIBRARY_VERSION = __version__
    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self) -> None:
        super().__init__(
            [
                ServiceKeywords(runtime()),
                DatabaseKeywords(runtime()),
                FaultKeywords(runtime()),
                McpServerKeywords(runtime()),
            ]
        )
        self.ROBOT_LIBRARY_LISTENER = [self, ReportListener(runtime())]

    def end_suite(self, data: Any, result: Any) -> None:
        services = runtime().services
        if services is not None and services.owner == data.full_name:
            for line in runtime().abort_background_launches():
                logger.warn(line)
            for line in runtime().stop_services():
                logger.info(line)

    def close(self) -> None:
        runtime().close()
