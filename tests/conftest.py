"""Puts the engine and keyword libraries on the import path, as Robot's --pythonpath does.

A test marked ``embedded_only`` runs in the embedded pass only: where ``STAMPEDE_PG_DSN``,
``STAMPEDE_REDIS_URL`` or ``STAMPEDE_AGENT_SERVICE_URL`` names a service of the user's, it is skipped.
So is an integration test that takes no service from the environment (its ``pg_dsn`` / ``redis_url``
parameters all ``embedded``, or none): the external pass would only repeat what the embedded pass ran.
"""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "libraries"))

from stampede.services.config import AGENT_SERVICE_URL_ENV, PG_DSN_ENV, REDIS_URL_ENV  # noqa: E402

EXTERNAL_SERVICE_ENVS = (PG_DSN_ENV, REDIS_URL_ENV, AGENT_SERVICE_URL_ENV)
SERVICE_FIXTURES = ("pg_dsn", "redis_url")
"""The integration fixtures whose ``external`` parameter is the service the environment names."""
INTEGRATION = ROOT / "tests" / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    external = [name for name in EXTERNAL_SERVICE_ENVS if os.environ.get(name)]
    if not external:
        return
    skip = pytest.mark.skip(reason=f"embedded pass only, and {', '.join(external)} names an external service")
    repeat = pytest.mark.skip(reason="the embedded pass runs it: it takes no service from the environment")
    for item in items:
        if item.get_closest_marker("embedded_only"):
            item.add_marker(skip)
        elif _repeats_the_embedded_pass(item):
            item.add_marker(repeat)


def _repeats_the_embedded_pass(item: pytest.Item) -> bool:
    if INTEGRATION not in item.path.parents:
        return False  # acceptance tests run robot, whose suites take their services from the environment
    params = getattr(item, "callspec", None)
    return params is None or all(params.params.get(name) != "external" for name in SERVICE_FIXTURES)
