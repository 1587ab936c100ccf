"""Run the reference agent service: ``python -m reference_agent_service --port 0 --pg-schema ... --redis-prefix ...``.

The JWT secret comes from ``$AGENT_SERVICE_JWT_SECRET``; the PostgreSQL DSN and
Redis URL from ``--pg-dsn`` / ``--redis-url`` or, to keep passwords out of
``ps``, from ``$AGENT_SERVICE_PG_DSN`` / ``$AGENT_SERVICE_REDIS_URL``. When it listens it
prints one JSON line to stdout: ``{"ready": true, "port": ..., "http_port": ..., "pid": ...,
"processes": 1, "pids": [...], "url": "ws://...", "http_url": "http://..."}`` (the HTTP API:
``docs/REFERENCE_HTTP_API.md``). SIGTERM or SIGINT stops it gracefully (exit code 0); bad settings exit with 2.

``--processes N`` serves the WebSocket port from N processes
(:mod:`reference_agent_service.supervisor`; ``--process-index`` is how it
starts each of them, not for direct use).

``--describe`` prints, as one JSON object, the bug switches (with what each
does) and the settings (with default, minimum and help) and exits: how a
harness that starts the service learns its options without importing it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .auth import SECRET_ENV, check_secret
from .bugs import Bug, parse_bugs
from .errors import ConfigurationError, ServiceError
from .ready import ready_line
from .settings import PG_DSN_ENV, REDIS_URL_ENV, ServiceSettings

if TYPE_CHECKING:
    from .server import ServiceConfig

EXIT_BAD_SETTINGS = 2
T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference_agent_service",
        description=f"The Stampede reference agent service. The JWT secret is read from ${SECRET_ENV}.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="WebSocket port; 0 picks a free one (default)")
    parser.add_argument("--http-port", type=int, default=0, help="HTTP port; 0 picks a free one (default)")
    parser.add_argument("--pg-dsn", help=f"PostgreSQL DSN (default ${PG_DSN_ENV})")
    parser.add_argument("--pg-schema", help="existing schema for the service's tables")
    parser.add_argument("--redis-url", help=f"Redis URL (default ${REDIS_URL_ENV})")
    parser.add_argument("--redis-prefix", help="prefix of every Redis key the service writes")
    parser.add_argument(
        "--bugs",
        default="none",
        help="comma-separated seeded bugs: " + ", ".join(bug.value for bug in Bug) + " (default none)",
    )
    ServiceSettings.add_arguments(parser)
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="processes serving the WebSocket port (SO_REUSEPORT); the first alone serves HTTP (default 1)",
    )
    parser.add_argument("--process-index", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--describe", action="store_true", help="print bug switches and settings as JSON; exit")
    return parser


def describe() -> dict[str, object]:
    """The service's options, for a harness that starts it: bug switches and settings."""
    return {
        "bugs": {bug.value: bug.description for bug in Bug},
        "settings": ServiceSettings.describe(),
    }


def _required(value: str | None, env_name: str, option: str, what: str) -> str:
    value = value or (os.environ.get(env_name) if env_name else None)
    if not value:
        raise ConfigurationError(f"No {what}: give {option}" + (f" or set ${env_name}" if env_name else ""))
    return value


def check_processes(args: argparse.Namespace) -> int:
    """How many processes to serve with, or ConfigurationError naming what to fix."""
    if args.processes < 1:
        raise ConfigurationError(
            f"--processes must be a whole number of at least 1 (the processes serving the WebSocket port), "
            f"got {args.processes}"
        )
    if args.process_index is not None and (args.process_index < 0 or args.processes != 1):
        raise ConfigurationError(
            "--process-index is given by --processes to each process it starts: run with --processes N alone"
        )
    return int(args.processes)


def config_from_args(args: argparse.Namespace) -> ServiceConfig:
    """The service's configuration, or ConfigurationError naming what to fix."""
    from .server import ServiceConfig  # the server's drivers load only when it serves, not for --describe

    return ServiceConfig(
        pg_dsn=_required(args.pg_dsn, PG_DSN_ENV, "--pg-dsn", "PostgreSQL DSN"),
        pg_schema=_required(args.pg_schema, "", "--pg-schema", "schema for the service's tables"),
        redis_url=_required(args.redis_url, REDIS_URL_ENV, "--redis-url", "Redis URL"),
        redis_prefix=_required(args.redis_prefix, "", "--redis-prefix", "Redis key prefix"),
        secret=check_secret(os.environ.pop(SECRET_ENV, None)),  # popped: nothing we start inherits it
        host=args.host,
        port=args.port,
        http_port=args.http_port,
        bugs=parse_bugs(args.bugs),
        settings=ServiceSettings.from_namespace(args),
        process_index=args.process_index,
    )


def _announce(line: str) -> None:
    print(line, flush=True)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed: the same service at a fraction of asyncio's CPU per frame and query."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _serve(config: ServiceConfig, processes: int) -> int:
    """Serve until signalled; return the exit code."""
    if processes > 1:
        from .supervisor import Supervisor

        return _run(Supervisor(config, processes).run(_announce))
    from .server import serve_until_signalled

    _run(serve_until_signalled(config, lambda listening: _announce(ready_line(config.host, *listening, [os.getpid()]))))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.describe:
        print(json.dumps(describe()))
        return 0
    process = "" if args.process_index is None else f"[{args.process_index}]"
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format=f"%(asctime)s %(levelname)s %(name)s{process}: %(message)s"
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    try:
        processes = check_processes(args)
        return _serve(config_from_args(args), processes)
    except ConfigurationError as error:
        print(f"agent service: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except ServiceError as error:
        print(f"agent service: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
