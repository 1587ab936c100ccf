"""The reference agent service run as several processes on one WebSocket port, against real PostgreSQL and Redis.

Which process serves a connection is the kernel's choice (SO_REUSEPORT); the
tests see it from outside, in the connections each pid holds on the port.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time

import aiohttp
import psutil
import pytest
from websockets.asyncio.client import connect

from reference_agent_service.protocol import RUN_LIFECYCLE, hello_frame
from stampede.errors import ConfigurationError
from stampede.services.agent_service_target import AgentServiceTarget
from stampede.services.embedded_agent_service import EmbeddedAgentService
from stampede_robot.keywords.resources import ResourceKeywords
from stampede_robot.runtime import Runtime, Services

from .test_agent_service import FRAME_TIMEOUT, Client, Harness, clients, scenario, seqs

USERS = 40
EXIT_WAIT = 15.0


def connections_by_pid(harness: Harness) -> dict[int, int]:
    """Established connections each serving process holds on the service's WebSocket port."""
    port = harness.service.port
    return {
        pid: sum(
            1
            for held in psutil.Process(pid).net_connections(kind="tcp")
            if held.status == psutil.CONN_ESTABLISHED and held.laddr.port == port
        )
        for pid in harness.service.pids
    }


def sessions_served(log: str) -> list[int]:
    """What each process said, stopping, about the sessions it served."""
    return [int(count) for count in re.findall(r"stopped cleanly after serving (\d+) sessions", log)]


def test_two_processes_serve_many_users_apart_and_stop_together(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        service = harness.service
        parent = psutil.Process(service.pid)
        assert len(service.pids) == 2 and {child.pid for child in parent.children()} == set(service.pids)
        users = await clients(service, USERS)
        held = connections_by_pid(harness)
        assert sum(held.values()) == USERS and all(held.values()), f"connections per serving pid: {held}"
        for _ in range(2):
            await asyncio.gather(*(client.run() for client in users))
        for client in users:
            assert seqs(client.frames) == list(range(1, 12))
            events = client.frames[1:]
            assert [event["type"] for event in events] == list(RUN_LIFECYCLE) * 2
            assert {(event["user_id"], event["marker"]) for event in events} == {(client.user_id, client.marker)}
            assert [event["message_position"] for event in events if event["type"] == "tool_completed"] == [1, 2]
        assert {await harness.balance(client.user_id) for client in users} == {998}
        async with aiohttp.ClientSession() as http, http.get(f"{service.http_url}threads/t1") as answer:
            assert answer.status == 401  # the first process serves HTTP; the request has no token
        await asyncio.gather(*(client.close() for client in users))
        pids = service.pids
        assert service.log_path is not None
        with service.log_path.open(errors="replace") as log:  # open: stop removes the file, not what we read
            assert await asyncio.to_thread(service.stop) == 0, "the service did not shut down cleanly"
            served = sessions_served(log.read())
        assert not any(psutil.pid_exists(pid) for pid in [parent.pid, *pids])
        assert len(served) == 2 and sum(served) == USERS and all(served), served
        assert await harness.redis.keys_left() == 0

    scenario(*embedded, run_id, body, processes=2)


def test_sessions_start_on_any_process_and_a_resume_elsewhere_is_refused_saying_why(
    embedded: tuple[str, str], run_id: str
) -> None:
    async def reconnect(service: EmbeddedAgentService, user_id: str) -> None:
        for _ in range(5):  # closed and reopened at once: the new hello may reach the other process first
            client = await Client.open(service, user_id)
            await client.close()

    async def body(harness: Harness) -> None:
        service = harness.service
        await asyncio.gather(*(reconnect(service, f"user{number}") for number in range(USERS)))
        alice = await Client.open(service, "alice")
        resume_token = alice.frames[0]["resume_token"]
        owner = int(resume_token.split(".", 1)[0].removeprefix("p"))
        alice.ws.transport.abort()  # dropped: the session waits for a resume in its process
        for _ in range(30):  # each new connection reaches either process
            async with connect(service.url, open_timeout=FRAME_TIMEOUT) as ws:
                await ws.send(hello_frame(service.token_for("alice"), resume_token=resume_token, last_seq=1))
                frame = await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
                if '"session_resumed"' in str(frame):
                    ws.transport.abort()
                    continue
                await ws.close()
                assert f"lives in the service's process {owner}" in str(frame) and "--processes 1" in str(frame)
                break
        else:
            raise AssertionError("30 connections all reached the process holding the session")

    scenario(*embedded, run_id, body, settings=dict(think_ms=20, resume_window_ms=20_000), processes=2)


def test_a_process_that_dies_stops_the_service_with_a_clear_log_line(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        service = harness.service
        parent, (first, second) = service.pid, service.pids
        runtime = Runtime()
        runtime.services = Services(owner="test", agent_service=AgentServiceTarget(service.url, embedded=service))
        with pytest.raises(ConfigurationError, match=f"runs 2 serving processes \\(pids {first}, {second}\\)"):
            ResourceKeywords(runtime).start_sampling_resources(target="agent service")  # the parent only supervises
        psutil.Process(second).send_signal(signal.SIGKILL)
        deadline = time.monotonic() + EXIT_WAIT
        while psutil.pid_exists(parent) and psutil.Process(parent).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, f"the service did not exit within {EXIT_WAIT:g} s of losing a process"
            await asyncio.sleep(0.05)
        assert service.log_path is not None
        log = service.log_path.read_text(errors="replace")
        assert f"process 1 (pid {second}) exited with code -9 while serving; stopping the other processes" in log
        assert service.stop() == 1
        assert not psutil.pid_exists(first) and not psutil.pid_exists(second)

    scenario(*embedded, run_id, body, processes=2)
