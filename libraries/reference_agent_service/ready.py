"""The one JSON line the service prints to stdout once it listens: how whoever started it learns its address."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence


def ready_line(host: str, port: int, http_port: int | None, pids: Sequence[int]) -> str:
    """``{"ready": true, "port": ..., "http_port": ..., "pid": ..., "processes": ..., "pids": [...], ...}``.

    ``pid`` is this process (the one to signal), ``pids`` the processes that serve.
    """
    return json.dumps(
        {
            "ready": True,
            "port": port,
            "http_port": http_port,
            "pid": os.getpid(),
            "processes": len(pids),
            "pids": list(pids),
            "url": f"ws://{host}:{port}/",
            "http_url": f"http://{host}:{http_port}/" if http_port is not None else None,
        }
    )
