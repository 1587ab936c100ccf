"""Concurrent SSE streams held by the HTTP agent tool: the largest count with 0 errors, and client CPU per request.

For each count (default 500, 1,000 and 2,000) that many agents, each a user with a thread
of its own, are released at once; each starts one run whose stream stays open for about
``--lines`` × ``--pause-ms`` (default 10 × 1 s: long enough for the service to have started
every run before the first ends) and reads it to its end. A count is held when every run
succeeded (0 errors) and all its streams were open at the same time (the latest first event
came before the earliest end). Reported per count: wall time, errors by kind, the streams
open at once, startup (first event) p99, this process's CPU time per HTTP request (thread
creation, run request, its stream) and per event, and its peak RSS growth per stream. Each count runs in a
fresh child process against a fresh service.

The service is, by default, the reference agent service (``python -m reference_agent_service``
via EmbeddedAgentService, a fresh one per count, its HTTP + SSE API, each user's JWT from
the service's own secret), on an embedded PostgreSQL and Redis (or ``--pg-dsn`` /
``--redis-url``), with its settings' defaults unless ``--pg-pool-size`` is given: its
PostgreSQL pool is what bounds it. ``--service tandem`` uses Tandem instead
(tests/acceptance/tandem_http_service.py, a third-party HTTP + SSE service, with
tests/acceptance/robot/tandem_protocol.json); ``--base-url URL`` points it at a running
service speaking the reference protocol (tokens signed with $STAMPEDE_AGENT_JWT_SECRET).

Run: .venv/bin/python bench/sse_streams.py [--streams 500 1000 2000] [--lines 10] [--pause-ms 1000]
     [--service reference|tandem] [--pg-pool-size N] [--base-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line, postgres, raise_open_files_limit, redis, run
from http_endpoint import serve_in_child

ROOT = Path(__file__).resolve().parents[1]
TANDEM_MODULE = "acceptance.tandem_http_service"  # tests/acceptance/tandem_http_service.py
TANDEM_PROTOCOL = ROOT / "tests" / "acceptance" / "robot" / "tandem_protocol.json"


async def _measure(
    url: str, streams: int, lines: int, pause_ms: int, keys: dict[str, str] | None, tokens: Any
) -> dict[str, Any]:
    from stampede.launcher import LaunchPlan, launch
    from stampede.metrics import summarize
    from stampede.services.tokens import SECRET_ENV, issue_token
    from stampede.workloads.http_agents import HttpAgentTool
    from stampede.workloads.http_protocol import HttpProtocol

    if keys is not None:
        data = json.loads(TANDEM_PROTOCOL.read_text())
        body = data["requests"]["run_stream"]["body"]
        body.update(lines=lines, pause_ms=pause_ms)
        protocol = HttpProtocol.from_dict(data, base_url=url)
        tokens: Any = keys
    else:
        body = {
            "input": {"marker": "{marker}", "text": "{text}", "steps": lines, "step_ms": pause_ms},
            "multitask_strategy": "{policy}",
        }
        run_stream = {"method": "POST", "path": "/threads/{thread}/runs/stream", "body": body}
        protocol = HttpProtocol.from_dict({"requests": {"run_stream": run_stream}}, base_url=url)
        if tokens is None:
            secret = os.environ[SECRET_ENV]
            tokens = lambda user: issue_token(secret, user)  # noqa: E731
    bound = lines * pause_ms / 1000 + 60
    tool = HttpAgentTool(protocol, tokens=tokens, policy="enqueue", answer_timeout=30, run_timeout=bound)
    plan = LaunchPlan(agents=streams, users=streams, operation_timeout=bound + 10, run_timeout=bound + 60)
    process = psutil.Process()
    rss = process.memory_info().rss
    peak = rss

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.1)

    sampler = asyncio.ensure_future(sample())
    cpu = time.process_time()
    result = await launch(tool, plan)
    cpu = time.process_time() - cpu
    sampler.cancel()
    history = list(result.history)
    errors: dict[str, int] = {}
    for op in history:
        if op.error:
            errors[op.error] = errors.get(op.error, 0) + 1
    for error in result.agent_errors.values():
        errors[error[:80]] = errors.get(error[:80], 0) + 1
    attempts = tool.attempts
    firsts = [a.first_event_ns for a in attempts if a.first_event_ns is not None]
    ends = [a.end_ns for a in attempts if a.end_ns is not None]
    at_once = sum(1 for a in attempts if a.first_event_ns and a.end_ns and a.end_ns > max(firsts, default=0))
    requests = len(attempts) + len(tool.threads) + sum(op.read.get("legs", 1) - 1 for op in history if op.read)
    startup = summarize(result).timings.get("first_event")
    return {
        "streams": streams,
        "ops": len(history),
        "errors": errors,
        "wall_s": (max(ends, default=0) - min(a.request_ns for a in attempts)) / 1e9 if attempts else 0.0,
        "open_at_once": at_once,
        "all_open_at_once": bool(firsts) and bool(ends) and max(firsts) < min(ends),
        "startup_p99_s": startup.percentiles[99] if startup and startup.count else None,
        "cpu_us_per_request": cpu / max(requests, 1) * 1e6,
        "cpu_us_per_event": cpu / max(len(tool.messages) + tool.messages.left_out, 1) * 1e6,
        "kb_per_stream": (peak - rss) / 1024 / streams,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--lines", type=int, default=10, help="messages (events) per run")
    parser.add_argument("--pause-ms", type=int, default=1000, help="between a run's messages")
    parser.add_argument("--service", choices=("reference", "tandem"), default="reference", help="the service started")
    parser.add_argument("--pg-pool-size", type=int, help="the reference service's PostgreSQL pool (its default if not)")
    parser.add_argument("--pg-dsn", default=None, help="PostgreSQL for the reference service (default: embedded)")
    parser.add_argument("--redis-url", default=None, help="Redis for the reference service (default: embedded)")
    parser.add_argument("--base-url", help="a running service speaking the reference protocol, started by no one here")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--tokens-on-stdin", action="store_true", help=argparse.SUPPRESS)  # never argv nor env
    args = parser.parse_args()
    raise_open_files_limit()
    if args.child:
        keys = json.loads(os.environ["TANDEM_API_KEYS"]) if "TANDEM_API_KEYS" in os.environ else None
        tokens = json.loads(sys.stdin.read()) if args.tokens_on_stdin else None
        print(json.dumps(run(_measure(args.url, args.child, args.lines, args.pause_ms, keys, tokens))), flush=True)
        return
    print(machine_line())
    if args.base_url or args.service == "tandem":
        _report(args, None, None)
        return
    print(f"service: the reference agent service, PostgreSQL pool {args.pg_pool_size or 'its default'}", flush=True)
    with postgres(args.pg_dsn) as pg_dsn, redis(args.redis_url) as redis_url:
        _report(args, pg_dsn, redis_url)


def _report(args: argparse.Namespace, pg_dsn: str | None, redis_url: str | None) -> None:
    held = 0
    for count in args.streams:
        figures = _count(count, args, pg_dsn, redis_url)
        print(
            f"{count} streams: {figures['wall_s']:.1f} s, errors {figures['errors'] or 0}, "
            f"{figures['open_at_once']} open at once (all: {figures['all_open_at_once']}), startup p99 "
            f"{_seconds(figures['startup_p99_s'])}, "
            f"{figures['cpu_us_per_request']:.0f} µs CPU per request ({figures['cpu_us_per_event']:.0f} per event), "
            f"{figures['kb_per_stream']:.1f} KB per stream",
            flush=True,
        )
        if not figures["errors"] and figures["all_open_at_once"] and figures["ops"] == count:
            held = max(held, count)
        figure(f"client CPU per request, {count} streams", f"{figures['cpu_us_per_request']:.0f} µs", "—", None)
    figure("largest count of concurrent SSE streams held with 0 errors", str(held), "—", None)


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def _count(count: int, args: argparse.Namespace, pg_dsn: str | None, redis_url: str | None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'libraries'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, __file__, "--child", str(count), "--lines", str(args.lines)]
    command += ["--pause-ms", str(args.pause_ms)]
    timeout = args.lines * args.pause_ms / 1000 + 300
    if args.base_url:
        return _child([*command, "--url", args.base_url], env, timeout)
    if pg_dsn is not None and redis_url is not None:
        settings = {"pg_pool_size": args.pg_pool_size} if args.pg_pool_size else {}
        return run(_on_reference_service(count, command, env, timeout, pg_dsn, redis_url, settings))  # type: ignore[return-value]
    keys = {f"user-{n}": secrets.token_urlsafe(12) for n in range(1, count + 1)}
    env["TANDEM_API_KEYS"] = json.dumps(keys)
    tandem_env = {**env, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{env['PYTHONPATH']}"}
    with serve_in_child([sys.executable, "-m", TANDEM_MODULE], tandem_env) as url:
        return _child([*command, "--url", f"{url}/api/v1"], env, timeout)


async def _on_reference_service(
    count: int,
    command: list[str],
    env: dict[str, str],
    timeout: float,
    pg_dsn: str,
    redis_url: str,
    settings: dict[str, int],
) -> dict[str, Any]:
    """The child's figures against a fresh reference service in a schema and key prefix of its own."""
    from stampede.services.embedded_agent_service import EmbeddedAgentService
    from stampede.services.postgres_target import open_postgres
    from stampede.services.redis_target import open_redis

    run_id = f"bench_{secrets.token_hex(4)}"
    postgres_target = await open_postgres(pg_dsn, run_id=run_id)
    try:
        redis_target = await open_redis(redis_url, run_id=run_id)
        try:
            service = EmbeddedAgentService.for_targets(postgres_target, redis_target, settings=settings)
            await asyncio.to_thread(service.start)
            try:
                tokens = {f"user-{n}": service.token_for(f"user-{n}") for n in range(1, count + 1)}
                child = [*command, "--url", service.http_url, "--tokens-on-stdin"]
                return await asyncio.to_thread(_child, child, env, timeout, json.dumps(tokens))
            finally:
                await asyncio.to_thread(service.stop)
        finally:
            await redis_target.close()
    finally:
        await postgres_target.close()


def _child(command: list[str], env: dict[str, str], timeout: float, stdin: str = "") -> dict[str, Any]:
    """The figures the child prints last. ``stdin``: the users' tokens (secrets stay out of argv; 2,000 JWTs are
    more than one environment variable may hold)."""
    answer = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if answer.returncode != 0:
        raise SystemExit(f"the launch of {command[3]} streams failed:\n{answer.stderr[-2000:]}")
    return json.loads(answer.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


if __name__ == "__main__":
    main()
