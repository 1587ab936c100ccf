"""A local HTTP endpoint for the HTTP benchmarks: aiohttp.web in a process of its own, on 127.0.0.1.

``POST /echo`` answers ``{"ok": true, "n": <the body's n>}``; ``GET /stream`` sends one
SSE event and then holds the stream open (a comment every 5 s) until the client goes.
``POST /threads`` and ``POST /threads/{thread}/runs/wait`` answer as the reference
service's HTTP API does (a thread; a run that succeeded at once), without doing any work,
so a client's cost per run request is what is measured.
``python bench/http_endpoint.py`` prints ``{"port": N}`` once it listens, then serves until
killed; :func:`serve_in_child` starts it that way and stops it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator

from aiohttp import web

START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


async def _echo(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"ok": True, "n": body.get("n")})


async def _stream(request: web.Request) -> web.StreamResponse:
    answer = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await answer.prepare(request)
    with contextlib.suppress(ConnectionError):  # the client went: the stream is done
        await answer.write(b'event: hello\nid: 1\ndata: {"seq": 1}\n\n')
        while True:
            await asyncio.sleep(5)
            await answer.write(b": keep-alive\n\n")
    return answer


async def _thread(request: web.Request) -> web.Response:
    return web.json_response({"thread_id": "t-1", "user_id": None, "version": 0}, status=201)


async def _run_wait(request: web.Request) -> web.Response:
    body = await request.json()
    run = f"r-{id(body)}"
    return web.json_response(
        {"run_id": run, "thread_id": request.match_info["thread"], "status": "success", "messages": []}
    )


async def _serve() -> None:
    app = web.Application()
    app.router.add_post("/echo", _echo)
    app.router.add_get("/stream", _stream)
    app.router.add_post("/threads", _thread)
    app.router.add_post("/threads/{thread}/runs/wait", _run_wait)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"port": port}), flush=True)
    await asyncio.Event().wait()


@contextlib.contextmanager
def serve_in_child(command: list[str] | None = None, env: dict[str, str] | None = None) -> Iterator[str]:
    """The base URL (``http://127.0.0.1:N``) of this endpoint, or of the server ``command`` starts, in a child.

    The child prints ``{"port": N}`` on its first line once it listens, and stops on SIGTERM.
    """
    child = subprocess.Popen(command or [sys.executable, __file__], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        line = _first_line(child)
        yield f"http://127.0.0.1:{json.loads(line)['port']}"
    finally:
        child.terminate()
        try:
            child.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(STOP_TIMEOUT)


def _first_line(child: subprocess.Popen[str]) -> str:
    import selectors

    assert child.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        if not selector.select(START_TIMEOUT):
            raise SystemExit(f"the benchmark's HTTP endpoint did not start within {START_TIMEOUT:g} s")
    line = child.stdout.readline()
    if not line:
        raise SystemExit(f"the benchmark's HTTP endpoint exited with {child.wait(STOP_TIMEOUT)} before listening")
    return line


if __name__ == "__main__":
    import uvloop

    uvloop.run(_serve())
