"""An MCP server over stdio: one child process per session, JSON-RPC messages one per line on its stdin/stdout.

What the MCP tool uses for ``server="stdio: <command>"``, as MCP clients run
local servers. Answers are matched to their requests by id; a notification
goes to the request in flight (a session has one at a time). The child's
stderr is kept (its last lines) to say why it ended, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

STDERR_LINES = 20
LINE_LIMIT = 2**22  # bytes of one JSON-RPC line


class StdioEnded(Exception):
    """The server process ended, or could not start, before it answered; the message has its stderr's tail."""


class StdioServer:
    """One server process and the requests waiting for its answers."""

    def __init__(self, process: asyncio.subprocess.Process, command: str) -> None:
        self.process = process
        self.command = command
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self.on_notification: Callable[[dict[str, Any]], None] | None = None
        self._pending: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.ensure_future(self._read())
        self._errors = asyncio.ensure_future(self._read_stderr())

    @classmethod
    async def start(cls, argv: Sequence[str], env: Mapping[str, str]) -> StdioServer:
        """Start ``argv`` with ``env`` added to ours; StdioEnded when it cannot start."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **env},
                limit=LINE_LIMIT,
            )
        except OSError as error:
            raise StdioEnded(f"could not start ({error})") from None
        return cls(process, " ".join(argv))

    async def exchange(
        self, message: dict[str, Any], on_notification: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any] | None:
        """Send ``message``; for a request, wait for its answer (notifications meanwhile to ``on_notification``)."""
        ident = message.get("id")
        waiting = asyncio.get_running_loop().create_future() if ident is not None else None
        if waiting is not None:
            self._pending[ident] = waiting
        try:
            self._write(message)
            if waiting is None:
                return None
            self.on_notification = on_notification
            return await waiting
        finally:
            if waiting is not None:
                self._pending.pop(ident, None)
                self.on_notification = None

    def _write(self, message: dict[str, Any]) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing() or self.process.returncode is not None:
            raise StdioEnded(self._ended())
        stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def _read(self) -> None:
        assert self.process.stdout is not None, "started with a pipe"
        while line := await self.process.stdout.readline():
            try:
                message = json.loads(line)
            except ValueError:
                self.stderr.append(f"(on stdout, not JSON) {line[:200]!r}")
                continue
            if not isinstance(message, dict):
                continue
            waiting = self._pending.get(message.get("id"))
            if waiting is not None and ("result" in message or "error" in message):
                if not waiting.done():
                    waiting.set_result(message)
            elif "method" in message and "id" not in message and self.on_notification is not None:
                self.on_notification(message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 1.0)
        await asyncio.wait({self._errors}, timeout=1.0)
        ended = StdioEnded(self._ended())
        for waiting in self._pending.values():
            if not waiting.done():
                waiting.set_exception(ended)

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None, "started with a pipe"
        while line := await self.process.stderr.readline():
            self.stderr.append(line.decode("utf-8", errors="replace").rstrip())

    def _ended(self) -> str:
        code = self.process.returncode
        said = "\n".join(self.stderr) or "(nothing on stderr)"
        how = "it still runs" if code is None else f"exit code {code}"
        return f"the server process ended its output ({how}); its stderr:\n{said}"

    def end_input(self) -> None:
        """Close its stdin, which tells the server to end; :meth:`close` waits for it."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()

    async def close(self, timeout: float) -> int | None:
        """Close its stdin, wait ``timeout`` s for it to end, then kill it; return its exit code."""
        self.end_input()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await asyncio.wait_for(self.process.wait(), timeout)
        for task in (self._reader, self._errors):
            task.cancel()
        return self.process.returncode
