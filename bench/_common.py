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
from pathlib import Path

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


CGROUP_ROOT = Path("/sys/fs/cgroup")
_QUOTA_PERIOD_US = 100_000


@contextlib.contextmanager
def cpu_quota(cpus: float | None) -> Iterator[None]:
    """Run this process, and everything it starts from here on, within ``cpus`` cores' worth of CPU time.

    A cgroup CPU quota (v1 ``cpu.cfs_quota_us`` or v2 ``cpu.max``): a slower or busier machine, to see how
    much room a figure has. Needs write access to the cgroup filesystem (root, or a delegated cgroup).
    """
    if cpus is None:
        yield
        return
    if cpus < 0.01:
        raise SystemExit(f"--cpus must be at least 0.01 (cores' worth of CPU time), got {cpus:g}")
    parent = _own_cpu_cgroup()
    group = parent / f"stampede-bench-{os.getpid()}"
    quota = str(int(cpus * _QUOTA_PERIOD_US))
    try:
        group.mkdir()
        if (group / "cpu.max").exists():
            (group / "cpu.max").write_text(f"{quota} {_QUOTA_PERIOD_US}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(_QUOTA_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(quota)
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as error:
        with contextlib.suppress(OSError):
            group.rmdir()
        raise SystemExit(
            f"--cpus needs a CPU cgroup it can make and join under {parent} ({error}): run the benchmark as root, "
            "or in a cgroup delegated to you with the cpu controller enabled"
        ) from None
    try:
        yield
    finally:
        (parent / "cgroup.procs").write_text(str(os.getpid()))
        try:
            group.rmdir()
        except OSError as error:
            print(f"could not remove the cgroup {group} ({error}): a process the benchmark started is still in it")


def _own_cpu_cgroup() -> Path:
    """The directory of this process's cgroup in the hierarchy with the cpu controller (v1's, else v2's)."""
    unified = None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            mounted = next((d for d in CGROUP_ROOT.glob("cpu*") if "cpu" in d.name.split(",")), None)
            if mounted is not None:
                return mounted / path.lstrip("/")
        elif controllers == "":
            unified = path
    v2 = CGROUP_ROOT / "unified" if (CGROUP_ROOT / "unified").is_dir() else CGROUP_ROOT
    offered = v2 / "cgroup.controllers"
    if unified is None or not offered.exists() or "cpu" not in offered.read_text(errors="replace").split():
        raise SystemExit(f"--cpus needs the cgroup cpu controller, and {CGROUP_ROOT} offers none")
    return v2 / unified.lstrip("/")


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
