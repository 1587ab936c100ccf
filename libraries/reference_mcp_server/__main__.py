"""Run the reference MCP server: ``python -m reference_mcp_server --pg-schema ... [--port 0] [--bugs ...]``.

With ``--stdio`` it serves one client on stdin/stdout instead (as MCP clients run
servers: one process per session), for the user whose bearer JWT is in
``$MCP_USER_TOKEN``; it prints no ready line, and its log goes to stderr.

The JWT secret comes from ``$AGENT_SERVICE_JWT_SECRET`` (the same tokens as the
reference agent service: HS256, user id in ``sub``), the PostgreSQL DSN from
``$MCP_SERVER_PG_DSN`` (never argv). When it listens it prints one JSON line:
``{"ready": true, "port": ..., "pid": ..., "url": "http://127.0.0.1:<port>/mcp", "bugs": [...]}``.
SIGTERM or SIGINT stops it (exit code 0); bad options exit with 2.
``--describe`` prints the bug switches as JSON and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence

from reference_agent_service.auth import SECRET_ENV, TokenError, check_secret, verify_token
from reference_agent_service.errors import ConfigurationError

from .bugs import Bug, parse_bugs
from .server import Sessions, Tools, application, build_server, describe, opened_store, ready_line

PG_DSN_ENV = "MCP_SERVER_PG_DSN"
USER_TOKEN_ENV = "MCP_USER_TOKEN"
STDIO_CONNECTIONS = 2  # a process serves one session
EXIT_BAD_OPTIONS = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reference_mcp_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--pg-schema", help="existing schema for the server's tables")
    parser.add_argument("--initial-credits", type=int, default=1_000_000, help="each user's starting balance")
    parser.add_argument("--session-idle-timeout", type=float, default=300.0, help="seconds before an idle session ends")
    parser.add_argument("--bugs", default="none", help="comma-separated: " + ", ".join(b.value for b in Bug))
    parser.add_argument("--stdio", action="store_true", help="serve one client on stdin/stdout ($MCP_USER_TOKEN)")
    parser.add_argument("--describe", action="store_true", help="print the bug switches as JSON; exit")
    return parser


async def serve_stdio(args: argparse.Namespace, secret: str, dsn: str, bugs: frozenset[Bug], user: str) -> None:
    async with opened_store(dsn, args.pg_schema, args.initial_credits, bugs, connections=STDIO_CONNECTIONS) as store:
        await build_server(Tools(store, secret, bugs, stdio_user=user)).run_stdio_async()


async def serve(args: argparse.Namespace, secret: str, dsn: str, bugs: frozenset[Bug]) -> None:
    import uvicorn

    async with opened_store(dsn, args.pg_schema, args.initial_credits, bugs) as store:
        sessions = Sessions(keep_after_delete=Bug.NEVER_REAP in bugs)
        app, _ = application(Tools(store, secret, bugs), sessions, args.session_idle_timeout)
        listener = socket.create_server((args.host, args.port))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5))
        serving = asyncio.ensure_future(server.serve(sockets=[listener]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.02)
        if server.started:
            print(ready_line(args.host, listener.getsockname()[1], os.getpid(), bugs), flush=True)
        await serving


def _stdio_user(secret: str) -> str:
    """Whom a stdio server serves: the user of the JWT in ``$MCP_USER_TOKEN``; ConfigurationError saying why not."""
    token = os.environ.pop(USER_TOKEN_ENV, "")
    if not token:
        raise ConfigurationError(f"--stdio serves one user: set ${USER_TOKEN_ENV} to the user's bearer JWT")
    try:
        return verify_token(secret, token).user_id
    except TokenError as error:
        raise ConfigurationError(f"${USER_TOKEN_ENV} is refused: {error.reason}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.describe:
        print(json.dumps(describe()))
        return 0
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        bugs = parse_bugs(args.bugs)
        if not args.pg_schema:
            raise ConfigurationError("No schema for the server's tables: give --pg-schema")
        dsn = os.environ.get(PG_DSN_ENV)
        if not dsn:
            raise ConfigurationError(f"No PostgreSQL DSN: set ${PG_DSN_ENV}")
        secret = check_secret(os.environ.pop(SECRET_ENV, None))
        user = _stdio_user(secret) if args.stdio else None
    except (ConfigurationError, ValueError) as error:
        print(f"mcp server: {error}", file=sys.stderr)
        return EXIT_BAD_OPTIONS
    if user is not None:
        asyncio.run(serve_stdio(args, secret, dsn, bugs, user))
    else:
        asyncio.run(serve(args, secret, dsn, bugs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
