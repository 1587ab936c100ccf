"""A lock of the user's, written in Python and named ``python:<module>:<callable>``.

The callable is imported when the tool is defined and called with no
arguments once per lock key when a launch starts; every holder of that key
shares the object it returns. The object needs ``acquire()`` and
``release()``, each a coroutine function or a plain function:

- ``acquire`` returns ``False`` when it did not get the lock, an ``int`` (not a
  bool) to hand out a fencing number, anything else when it got the lock. A
  coroutine is awaited within the wait bound and cancelled after it; a plain
  function is called as ``acquire(blocking=False)`` and polled, so a thread
  lock never blocks the event loop every holder runs on.
- ``release`` returns ``False`` for "not owned", anything else for released.

So ``python:asyncio:Lock`` and ``python:threading:Lock`` work as they are. A
lease, when the user's lock has one, is given with the tool (``lease=``) so
the checks know when a hold may have ended on its own.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError
from .base import Grant, Lock, LockHolder, LockSpec, ReleaseAnswer, poll


def load_factory(path: str) -> Callable[[], Any]:
    """The callable ``module:callable`` names (the callable part may be dotted), imported now."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            f"A Python lock is written python:<module>:<callable>, e.g. python:asyncio:Lock; got python:{path}"
        )
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigurationError(
            f"Cannot import module {module_name!r} for lock python:{path}: {error}. Put it on the Python path "
            "(robot --pythonpath, or PYTHONPATH)."
        ) from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigurationError(f"Module {module_name!r} has no {attribute!r} (lock python:{path}).") from None
    if not callable(found):
        raise ConfigurationError(f"python:{path} is not callable: it must make the lock object.")
    return found


class PythonLock(Lock):
    def __init__(self, spec: LockSpec, lease: float | None) -> None:
        assert spec.factory is not None, "a python: lock names its factory"
        if lease is not None and lease <= 0:
            raise ConfigurationError(f"a lease must be longer than 0 ms, got {lease * 1000:g} ms")
        self.spec = spec
        self.lease = lease
        self.factory = load_factory(spec.factory)
        self._locks: dict[str, Any] = {}

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "fencing numbers": "when acquire() returns an int"}

    async def setup(self, agents: int) -> None:
        self._locks.clear()

    def shared(self, key: str) -> Any:
        """The lock object of ``key``, made on first use and shared by its holders."""
        if key not in self._locks:
            made = self.factory()
            missing = [name for name in ("acquire", "release") if not callable(getattr(made, name, None))]
            if missing:
                raise ConfigurationError(
                    f"python:{self.spec.factory} made a {type(made).__name__}, which has no "
                    f"{' or '.join(missing)}() method: a lock needs acquire() and release()."
                )
            self._locks[key] = made
        return self._locks[key]

    async def holder(self, key: str, wait: float) -> LockHolder:
        return _PythonHolder(self.shared(key), wait)

    async def teardown(self) -> None:
        self._locks.clear()


class _PythonHolder(LockHolder):
    def __init__(self, lock: Any, wait: float) -> None:
        self.lock = lock
        self.wait = wait
        self.held = False

    async def acquire(self, token: str) -> Grant | None:
        if inspect.iscoroutinefunction(self.lock.acquire):
            tried = time.monotonic_ns()
            try:
                answer = await asyncio.wait_for(self.lock.acquire(), self.wait)
            except TimeoutError:
                return None
        else:

            async def try_once() -> tuple[Any] | None:
                answer = self.lock.acquire(blocking=False)
                return None if answer is False else (answer,)

            boxed, tried = await poll(try_once, self.wait)
            answer = False if boxed is None else boxed[0]
        if answer is False:
            return None
        self.held = True
        return Grant(answer if isinstance(answer, int) and not isinstance(answer, bool) else None, tried)

    async def release(self) -> ReleaseAnswer:
        self.held = False
        answer = self.lock.release()
        if inspect.isawaitable(answer):
            answer = await answer
        return ReleaseAnswer.NOT_OWNED if answer is False else ReleaseAnswer.RELEASED

    def abandon(self) -> None:
        # An in-process lock has no lease: a hold cut off must be released, or every other holder waits forever.
        if self.held and not inspect.iscoroutinefunction(self.lock.release):
            self.held = False
            self.lock.release()
