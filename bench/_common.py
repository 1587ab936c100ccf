"""What every benchmark shares: the machine line, the services it starts itself, a result line."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import os
import platform
import resource
from collections.abc import Iterator

from stampede.services.config import resolve_postgres_dsn, resolve_redis_url
from stampede.services.embedded_postgres import EmbeddedPostgres
from stampede.services.embedded_redis import EmbeddedRedis


def machine_line() -> str:
    """Date, cores, Python and load average: printed above every figure, so a figure carries its conditions."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"# {now}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {load}"


def figure(name: str, value: str, target: str, met: bool | None) -> None:
    """One result line, the same shape in every benchmark: name, measured value, target, met?"""
    verdict = "n/a" if met is None else ("MET" if met else "MISSED")
    print(f"FIGURE {name}: {value} (target {target}) {verdict}", flush=True)


@contextlib.contextmanager
def postgres(dsn: str | None = None, settings: dict[str, str] | None = None) -> Iterator[str]:
    """The given DSN (or STAMPEDE_PG_DSN), else an embedded PostgreSQL (with ``settings``) for the benchmark."""
    dsn = resolve_postgres_dsn(dsn)
    if dsn is not None:
        yield dsn
        return
    server = EmbeddedPostgres(settings)
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.contextmanager
def redis(url: str | None = None) -> Iterator[str]:
    """The given URL (or STAMPEDE_REDIS_URL), else an embedded Redis for the benchmark's lifetime."""
    url = resolve_redis_url(url)
    if url is not None:
        yield url
        return
    server = EmbeddedRedis()
    try:
        yield server.start()
    finally:
        server.stop()


def raise_open_files_limit() -> int:
    """Raise this process's open-files limit to its hard limit (children inherit it) and return it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run(coroutine: object, *, use_uvloop: bool = True) -> object:
    """Run ``coroutine`` on a uvloop loop (as the engine's own loop does) or asyncio's."""
    if use_uvloop:
        import uvloop

        return uvloop.run(coroutine)  # type: ignore[arg-type]
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def require_bench_packages(*modules: str) -> None:
    """Exit saying how to install them when a benchmark's comparison packages are missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"This benchmark needs {', '.join(missing)}, which Stampede itself does not: "
            ".venv/bin/pip install -r requirements-bench.txt"
        )
