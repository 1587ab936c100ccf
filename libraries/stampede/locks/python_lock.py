"""A lock of the user's, written in Python and named ``python:<module>:<callable>``.

The callable (the *factory*) is imported when the tool is defined and called
once per holder: each agent gets a lock object of its own, as each client of a
real lock service would, because most lock libraries keep the owner's token in
the object. The factory is called with the keyword arguments it names, chosen
from :data:`OFFERED`: the lock's key (under the run's key prefix, so whatever
the lock leaves in Redis is cleaned up), the tool's lease, and the Redis of
``Use Redis`` as a client or a URL with its password. Its signature is checked
when the tool is defined, and it is called once then to check what it makes.

The object it makes needs ``acquire()`` and ``release()``, each a coroutine
function or a plain function (a plain one runs in a worker thread, so a
blocking network call does not stall the event loop every holder runs on):

- ``acquire`` returns ``False`` when it did not get the lock, ``True`` when it
  did, or an ``int`` (not a bool): the fencing number of the grant, from an
  object that says ``issues_fences = True``. A coroutine is awaited within the
  wait bound and cancelled after it; a plain function is called as
  ``acquire(blocking=False)`` and polled.
- ``release`` returns ``False`` for "not owned" (the lock had let go of this
  holder, or was someone else's), anything else for released. An exception is
  a release that raised: counted and shown as such, never as "not owned".
- ``close()``, when the object has one, is called when the agent stops.

A lease, when the user's lock has one, is declared with the tool (``lease=``)
so the checks know when a hold may have ended on its own.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..services.secrets import scrub
from .base import Grant, Lock, LockHolder, LockSpec, ReleaseAnswer, poll

if TYPE_CHECKING:
    from ..services.redis_target import RedisTarget

OFFERED = {
    "key": "key (str: the lock's key, under the run's prefix)",
    "lease": "lease (float seconds, or None: the tool's lease=)",
    "redis": "redis (redis.asyncio.Redis: the client of Use Redis)",
    "redis_url": "redis_url (str: the URL of Use Redis, password intact)",
}
"""The keyword arguments a factory may take, each with what it is given."""
CHECK_KEY = "definition-check"
_SCAN_COUNT = 1000


def load_factory(path: str) -> Callable[..., Any]:
    """The callable ``module:callable`` names (the callable part may be dotted), imported now."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(
            "A Python lock is written python:<module>:<callable>, e.g. "
            f"python:stampede.locks.in_process:asyncio_lock; got python:{path}"
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


def factory_arguments(factory: Callable[..., Any], path: str) -> tuple[str, ...]:
    """The names of :data:`OFFERED` that ``factory`` takes, refusing a parameter Stampede cannot fill."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: called with nothing
        return ()
    names: list[str] = []
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return tuple(OFFERED)
        if parameter.name in OFFERED and parameter.kind is not inspect.Parameter.POSITIONAL_ONLY:
            names.append(parameter.name)
        elif parameter.default is inspect.Parameter.empty and parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
            raise ConfigurationError(
                f"python:{path} takes {parameter.name!r}, which Stampede does not give. The factory is called once "
                f"per agent with the keyword arguments it names, from: {'; '.join(OFFERED.values())}. Name its "
                f"parameters after those, or give {parameter.name!r} a default."
            )
    return tuple(names)


def _takes_blocking(acquire: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(acquire).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature, such as threading.Lock's: assume it does
        return True
    return any(p.name == "blocking" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


class PythonLock(Lock):
    def __init__(self, spec: LockSpec, lease: float | None, target: RedisTarget) -> None:
        assert spec.factory is not None, "a python: lock names its factory"
        if lease is not None and lease <= 0:
            raise ConfigurationError(f"a lease must be longer than 0 ms, got {lease * 1000:g} ms")
        self.spec = spec
        self.lease = lease
        self.target = target
        self.factory = load_factory(spec.factory)
        self.arguments = factory_arguments(self.factory, spec.factory)
        checked = self.make(CHECK_KEY)
        self.issues_fences = bool(getattr(checked, "issues_fences", False))
        close = getattr(checked, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):  # nothing here could await an async one
            close()

    def describe(self) -> dict[str, str]:
        given = ", ".join(self.arguments) or "nothing"
        return {**super().describe(), "factory called once per agent with": given}

    def caveat(self) -> str:
        if {"key", "redis", "redis_url"} & set(self.arguments):
            return ""
        return (
            f"python:{self.spec.factory} is given no key and no Redis, and each agent gets a lock object of its own: "
            "unless those objects share state, the lock excludes no one. For an in-process lock shared by every "
            "agent, use python:stampede.locks.in_process:asyncio_lock (or threading_lock)."
        )

    def make(self, key: str) -> Any:
        """A new lock object for lock ``key``, checked for ``acquire()`` and ``release()``."""
        offered: dict[str, Any] = {"key": self.target.key(f"lock:{key}"), "lease": self.lease}
        if "redis" in self.arguments:
            offered["redis"] = self.target.client
        if "redis_url" in self.arguments:
            offered["redis_url"] = self.target.url
        try:
            made = self.factory(**{name: offered[name] for name in self.arguments})
        except Exception as error:  # noqa: BLE001 - whatever the user's factory raised, said with what it was given
            shown = {**offered, "redis": "<the client of Use Redis>", "redis_url": self.target.display_url}
            given = ", ".join(f"{name}={shown[name]!r}" for name in self.arguments)
            said = scrub(str(error), self.target.url)
            raise ConfigurationError(
                f"python:{self.spec.factory} raised {type(error).__name__} when called with {given or 'nothing'}: "
                f"{said}"
            ) from None
        missing = [name for name in ("acquire", "release") if not callable(getattr(made, name, None))]
        if missing:
            raise ConfigurationError(
                f"python:{self.spec.factory} made a {type(made).__name__}, which has no "
                f"{' or '.join(missing)}() method: a lock needs acquire() and release()."
            )
        if not inspect.iscoroutinefunction(made.acquire) and not _takes_blocking(made.acquire):
            raise ConfigurationError(
                f"The acquire() of the {type(made).__name__} python:{self.spec.factory} made is a plain function, "
                "which Stampede calls as acquire(blocking=False) and polls, but it takes no 'blocking': give it "
                "that parameter, or make it a coroutine function (async def)."
            )
        return made

    async def holder(self, key: str, wait: float) -> LockHolder:
        return _PythonHolder(self.make(key), wait)

    async def sweep(self) -> None:
        # Libraries put keys of their own around the one they are given ('redlock:<key>', 'lock-signal:<key>'):
        # those carry the run's prefix inside. Keys that start with it are the target's to delete when it closes.
        client = self.target.client
        found = [
            key
            async for key in client.scan_iter(match=f"*{self.target.prefix}*", count=_SCAN_COUNT)
            if not (key.decode() if isinstance(key, bytes) else key).startswith(self.target.prefix)
        ]
        if found:
            await client.unlink(*found)


class _PythonHolder(LockHolder):
    def __init__(self, lock: Any, wait: float) -> None:
        self.lock = lock
        self.wait = wait
        self.held = False

    async def acquire(self, token: str) -> Grant | None:
        if inspect.iscoroutinefunction(self.lock.acquire):
            tried = time.monotonic_ns()
            try:
                async with asyncio.timeout(self.wait):
                    answer = await self.lock.acquire()
            except TimeoutError:
                return None
        else:

            async def try_once() -> tuple[Any] | None:
                answer = await asyncio.to_thread(self.lock.acquire, blocking=False)
                return None if answer is False else (answer,)

            boxed, tried = await poll(try_once, self.wait)
            answer = False if boxed is None else boxed[0]
        if answer is False:
            return None
        self.held = True
        return Grant(answer if isinstance(answer, int) and not isinstance(answer, bool) else None, tried)

    async def release(self) -> ReleaseAnswer:
        self.held = False
        if inspect.iscoroutinefunction(self.lock.release):
            answer = await self.lock.release()
        else:
            answer = await asyncio.to_thread(self.lock.release)
        return ReleaseAnswer.NOT_OWNED if answer is False else ReleaseAnswer.RELEASED

    def abandon(self) -> None:
        # An in-process lock has no lease: a hold cut off must be released, or every other holder waits forever.
        if self.held and not inspect.iscoroutinefunction(self.lock.release):
            self.held = False
            self.lock.release()

    async def close(self) -> None:
        close = getattr(self.lock, "close", None)
        if callable(close):
            closed = close()
            if inspect.isawaitable(closed):
                await closed
