"""How the reference agent service is told to run several processes, and how it starts each of them."""

from __future__ import annotations

import pytest

from reference_agent_service.__main__ import EXIT_BAD_SETTINGS, build_parser, main
from reference_agent_service.auth import SECRET_ENV
from reference_agent_service.bugs import Bug
from reference_agent_service.server import ServiceConfig
from reference_agent_service.settings import PG_DSN_ENV, REDIS_URL_ENV, ServiceSettings
from reference_agent_service.supervisor import Supervisor
from stampede.errors import ConfigurationError
from stampede.services.embedded_agent_service import EmbeddedAgentService
from stampede.services.tokens import new_secret


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--processes", "0"], "--processes must be a whole number of at least 1 (the processes serving"),
        (["--processes", "-2"], "--processes must be a whole number of at least 1 (the processes serving"),
        (["--processes", "2", "--process-index", "1"], "--process-index is given by --processes"),
    ],
)
def test_a_bad_process_count_exits_2_saying_what_to_give(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_BAD_SETTINGS
    assert says in capsys.readouterr().err


def test_each_process_is_started_with_the_parents_options_and_its_index_and_no_secret_in_argv() -> None:
    config = ServiceConfig(
        pg_dsn="postgresql://app:pg-password@db/x",
        pg_schema="stampede_run",
        redis_url="redis://:redis-password@cache/0",
        redis_prefix="stampede:run:",
        secret=new_secret(),
        port=0,
        http_port=8123,
        bugs=frozenset({Bug.REORDER, Bug.LEAK}),
        settings=ServiceSettings(think_ms=5, pg_pool_size=3),
    )
    supervisor = Supervisor(config, 3)
    argv = supervisor._argv(2, 40123)
    assert not any(secret in " ".join(argv) for secret in (config.secret, "pg-password", "redis-password"))
    args = build_parser().parse_args(argv[3:])  # after python -m reference_agent_service
    assert (args.port, args.http_port, args.processes, args.process_index) == (40123, 8123, 1, 2)
    assert (args.pg_schema, args.redis_prefix, args.bugs) == ("stampede_run", "stampede:run:", "leak,reorder")
    assert ServiceSettings.from_namespace(args) == config.settings
    environment = supervisor._environment()
    assert (environment[SECRET_ENV], environment[PG_DSN_ENV], environment[REDIS_URL_ENV]) == (
        config.secret,
        config.pg_dsn,
        config.redis_url,
    )


def test_the_embedded_service_passes_its_process_count_and_refuses_none() -> None:
    def service(processes: int) -> EmbeddedAgentService:
        return EmbeddedAgentService(
            pg_dsn="postgresql://db/x",
            pg_schema="s",
            redis_url="redis://cache/0",
            redis_prefix="p:",
            processes=processes,
        )

    argv = service(2).argv()
    assert argv[argv.index("--processes") + 1] == "2"
    for bad in (0, -1, True):
        with pytest.raises(ConfigurationError, match="needs at least 1 process to serve with"):
            service(bad)
