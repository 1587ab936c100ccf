"""Hosts on this machine for tests: network namespaces on one bridge, each with a monotonic clock of its own.

A :class:`Lan` is a bridge in this (the root) namespace holding the "server
machine's" address, and one network namespace per host, joined to the bridge
by a veth pair, with its own address on the bridge's network. A command run
on a host runs in its network namespace and in a fresh time namespace whose
monotonic clock is ``shift`` seconds ahead of this one. Leaving the ``with``
block kills and reaps the processes started, deletes the veth pairs, the
namespaces and the bridge, and fails if any of them is still there.

:func:`shifted_clocks` makes hosts with a clock of their own but this
machine's network (their address 127.0.0.1), for services that listen on
loopback only; :func:`dask_on` runs a scheduler here and a ``dask worker`` on
each host of either kind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

COMMAND_SECONDS = 10.0
"""Bound on each ``ip`` command, and on each process's exit once told to stop."""
STARTUP_SECONDS = 30.0
"""Bound on the scheduler's start and on the workers' joining it."""
DASK = Path(sys.executable).with_name("dask")
WORKER_OPTIONS = ("--nworkers", "1", "--nthreads", "1", "--no-nanny", "--no-dashboard")
LOOPBACK = ipaddress.IPv4Interface("127.0.0.1/8")
_SUBNETS = [ipaddress.IPv4Network(f"10.{second}.{third}.0/24") for second in range(200, 255) for third in range(256)]


@dataclass(frozen=True)
class Host:
    namespace: str | None
    """Its network namespace; None for a host on this machine's network."""
    address: str
    shift_seconds: int
    veth: str | None
    """The name of its veth pair's end on this side."""

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as run on this host: in its network namespace, its monotonic clock ``shift_seconds`` ahead."""
        shifted = ["unshare", "-T", "--monotonic", str(self.shift_seconds), *argv]
        return shifted if self.namespace is None else ["ip", "netns", "exec", self.namespace, *shifted]


@dataclass
class Lan:
    bridge: str | None
    """None when the hosts share this machine's network."""
    interface: ipaddress.IPv4Interface
    """This namespace's address on the bridge, with its network (``10.x.y.1/24``); loopback without a bridge."""
    hosts: list[Host] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return str(self.interface.ip)

    def start(
        self, argv: Sequence[str], log: Path, env: Mapping[str, str], host: Host | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on ``host`` (on this side when None), its output to ``log``; killed at tear-down."""
        command = host.command(argv) if host is not None else list(argv)
        with log.open("wb") as output:
            process = subprocess.Popen(command, stdout=output, stderr=output, env=env)
        self.processes.append(process)
        return process


def time_namespaces_unavailable() -> str | None:
    """Why this machine cannot give a process a shifted monotonic clock (``unshare -T``); None when it can."""
    if shutil.which("unshare") is None:
        return "no 'unshare' command"
    shifted = _run("unshare", "-T", "--monotonic", "10", "true")
    return None if shifted.returncode == 0 else f"'unshare -T' is not permitted here: {shifted.stderr.strip()}"


def hosts_unavailable() -> str | None:
    """Why this machine cannot make such hosts (``ip netns add`` or ``unshare -T`` refused); None when it can."""
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"no {tool!r} command"
    namespace = f"stampede-probe-{secrets.token_hex(3)}"
    added = _run("ip", "netns", "add", namespace)
    if added.returncode != 0:
        return f"'ip netns add' is not permitted here: {added.stderr.strip()}"
    try:
        shifted = _run("ip", "netns", "exec", namespace, "unshare", "-T", "--monotonic", "10", "true")
    finally:
        _run("ip", "netns", "delete", namespace)
    if shifted.returncode != 0:
        return f"'unshare -T' (a time namespace) is not permitted here: {shifted.stderr.strip()}"
    return None


@contextlib.contextmanager
def lan(shifts_seconds: Sequence[int]) -> Iterator[Lan]:
    """A bridge on a free 10.200-254.x.0/24 network and one host per shift on it; all of it gone afterwards."""
    tag = secrets.token_hex(3)
    network = _free_subnet()
    addresses = list(network.hosts())
    made = Lan(f"stp{tag}br", ipaddress.IPv4Interface(f"{addresses[0]}/{network.prefixlen}"))
    try:
        _ip("link", "add", made.bridge, "type", "bridge")
        _ip("addr", "add", str(made.interface), "dev", made.bridge)
        _ip("link", "set", made.bridge, "up")
        for number, shift in enumerate(shifts_seconds, start=1):
            inside = f"stp{tag}p{number}"
            host = Host(f"stampede-{tag}-{number}", str(addresses[number]), shift, f"stp{tag}h{number}")
            _ip("netns", "add", host.namespace)
            made.hosts.append(host)
            _ip("link", "add", host.veth, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", host.namespace)
            _ip("link", "set", host.veth, "master", made.bridge, "up")
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/{network.prefixlen}", "dev", inside)
            _ip("-n", host.namespace, "link", "set", inside, "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
        yield made
    finally:
        _tear_down(made, tag)


@contextlib.contextmanager
def shifted_clocks(shifts_seconds: Sequence[int]) -> Iterator[Lan]:
    """One host per shift on this machine's network, each with its clock that far ahead; their processes ended after."""
    made = Lan(None, LOOPBACK, [Host(None, str(LOOPBACK.ip), shift, None) for shift in shifts_seconds])
    try:
        yield made
    finally:
        _tear_down(made, secrets.token_hex(3))


@contextlib.contextmanager
def dask_on(hosts: Lan, logs: Path) -> Iterator[str]:
    """A scheduler on this side and a ``dask worker`` on each host, all of them joined; the scheduler's address."""
    from distributed import Client

    scheduler_file = logs / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # the workers import Stampede and the tools
    scheduler = [str(DASK), "scheduler", "--host", hosts.address, "--port", "0", "--no-dashboard"]
    hosts.start([*scheduler, "--scheduler-file", str(scheduler_file)], logs / "scheduler.log", env)
    deadline = time.monotonic() + STARTUP_SECONDS
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert scheduler_file.exists(), f"no scheduler in {STARTUP_SECONDS:g} s: see {logs / 'scheduler.log'}"
    address = json.loads(scheduler_file.read_text(encoding="utf-8"))["address"]
    for number, host in enumerate(hosts.hosts, start=1):
        # No --host: as on a machine of its own, the worker finds the address it reaches the scheduler from.
        hosts.start([str(DASK), "worker", address, *WORKER_OPTIONS], logs / f"worker-{number}.log", env, host)
    with Client(address, timeout=STARTUP_SECONDS) as client:
        client.wait_for_workers(len(hosts.hosts), timeout=STARTUP_SECONDS)
    yield address


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 no route and no address of this machine's falls in (the hosts would shadow it)."""
    routes = [line.split()[0] for line in _ip("-4", "route", "show", "table", "all").splitlines()]
    taken = [ipaddress.ip_network(route, strict=False) for route in routes if route[0].isdigit()]
    for subnet in random.sample(_SUBNETS, 50):
        if not any(subnet.overlaps(route) for route in taken):
            return subnet
    raise RuntimeError("no free 10.200-254.x.0/24 network for the test hosts")


def _tear_down(made: Lan, tag: str) -> None:
    for process in made.processes:
        process.kill()
    unreaped = []
    for process in made.processes:
        try:
            process.wait(timeout=COMMAND_SECONDS)
        except subprocess.TimeoutExpired:
            unreaped.append(process.args)
    if made.bridge is None:
        assert not unreaped, f"left behind: {unreaped=}"
        return
    for host in made.hosts:
        if host.veth is not None and host.namespace is not None:
            _run("ip", "link", "delete", host.veth)  # at once: the namespace's own deletion frees its end later
            _run("ip", "netns", "delete", host.namespace)
    _run("ip", "link", "delete", made.bridge)
    namespaces = [line for line in _ip("netns", "list").splitlines() if f"stampede-{tag}-" in line]
    links = [line for line in _ip("-o", "link", "show").splitlines() if f"stp{tag}" in line]
    assert not (unreaped or namespaces or links), f"left behind: {unreaped=} {namespaces=} {links=}"


def _ip(*argv: str) -> str:
    done = _run("ip", *argv)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_SECONDS, check=False)
