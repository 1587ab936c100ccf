"""In-process locks for ``python:`` locks: one asyncio or threading lock per key, shared by that key's holders.

Every agent runs in Stampede's process, so an in-process lock is the one kind
for which one object shared by all holders is right: ``Define Lock Tool``
``lock=python:stampede.locks.in_process:asyncio_lock``. A lock lives while a
holder keeps it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from weakref import WeakValueDictionary

_asyncio_locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()
_threading_locks: WeakValueDictionary[str, Any] = WeakValueDictionary()


def asyncio_lock(key: str) -> asyncio.Lock:
    """The ``asyncio.Lock`` of ``key``, the same object for every holder of it."""
    return _asyncio_locks.setdefault(key, asyncio.Lock())


def threading_lock(key: str) -> Any:
    """The ``threading.Lock`` of ``key``, the same object for every holder of it."""
    return _threading_locks.setdefault(key, threading.Lock())
