"""The HTTP protocol's defaults describe the reference service's HTTP API; mistakes fail when it loads, naming the key.

And the SSE parser turns a stream's lines into events as the HTML standard says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stampede.errors import ConfigurationError
from stampede.records.threads import RunPolicy, RunStatus, ServiceRun
from stampede.workloads.http_agents import ThreadReadFailed
from stampede.workloads.http_answers import service_runs
from stampede.workloads.http_protocol import HttpAuth, HttpProtocol, reference_service
from stampede.workloads.http_request_templates import RequestName
from stampede.workloads.sse import SseEvent, SseParser

BASE = "http://127.0.0.1:8080/"
TANDEM = Path(__file__).resolve().parents[1] / "acceptance" / "robot" / "tandem_protocol.json"


def load(**data: Any) -> HttpProtocol:
    return HttpProtocol.from_dict(data, base_url=BASE)


def test_the_defaults_are_the_reference_services_http_api() -> None:
    protocol = reference_service(BASE)
    assert protocol.base_url == "http://127.0.0.1:8080" and protocol.auth is HttpAuth.BEARER
    run = protocol.request(RequestName.RUN_STREAM)
    assert run is not None and (run.method, run.path) == ("POST", "/threads/{thread}/runs/stream")
    values = {"thread": "t 1/2", "marker": "m-1", "text": "hi", "policy": "enqueue"}
    method, path, body = run.rendered(values)
    assert method == "POST"
    assert path == "/threads/t%201%2F2/runs/stream"  # path placeholders are URL-encoded
    assert body == {
        "input": {"marker": "m-1", "text": "hi", "steps": 3, "step_ms": 20},
        "multitask_strategy": "enqueue",
    }
    assert protocol.messages_per_run == 3 and protocol.refusal_statuses == (409,) and protocol.resume
    assert protocol.terminal_events["run_rolled_back"] is RunStatus.ROLLED_BACK
    assert protocol.status_of("error") is RunStatus.FAILED and protocol.policies[RunPolicy.ROLLBACK] == "rollback"
    assert protocol.headers("tok", {}) == {"Authorization": "Bearer tok"} and protocol.query("tok") == {}


def test_a_protocol_written_from_a_services_docs_loads_with_its_own_words() -> None:
    protocol = HttpProtocol.load(str(TANDEM), base_url=BASE)
    assert protocol.auth is HttpAuth.HEADER and protocol.headers("k", {"token": "k"}) == {"X-Api-Key": "k"}
    assert protocol.messages_per_run == 2 and protocol.refusal_statuses == (423,)
    assert protocol.policies[RunPolicy.INTERRUPT] == "preempt" and protocol.status_of("undone") is RunStatus.ROLLED_BACK
    assert protocol.request(RequestName.READ_HISTORY) is None and protocol.answers.history_states is None
    assert protocol.event_field({"event": "x", "id": "7", "data": {}}, "seq", required=True) == "7"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"colour": "red"}, r"^HTTP protocol: unknown key\(s\) 'colour'; known keys are answers, auth, base_url"),
        (
            {"requests": {"run_stream": {"method": "POST", "path": "/t/{thread}/runs", "body": {"x": "{nope}"}}}},
            r"^HTTP protocol: requests\.run_stream\.body uses \{nope\}, which is not a placeholder: use \{agent\}",
        ),
        (
            {"requests": {"create_thread": {"method": "POST", "path": "/t/{thread}"}}},
            r"^HTTP protocol: requests\.create_thread\.path uses \{thread\}, which is not a placeholder",
        ),
        ({"requests": {"start": {}}}, r"^HTTP protocol: unknown request\(s\) 'start' under requests; known"),
        ({"requests": {"read_state": None}}, r"^HTTP protocol: requests\.read_state is needed"),
        (
            {"requests": {"read_state": {"method": "FETCH", "path": "/t"}}},
            r"^HTTP protocol: requests\.read_state\.method must be one of GET, POST",
        ),
        ({"requests": {"read_state": {"method": "GET", "path": "t"}}}, r"path must be a path starting with '/'"),
        ({"events": {"marker": 3}}, r"^HTTP protocol: events\.marker must be a dotted field path"),
        ({"events": {"tag": "data.tag"}}, r"^HTTP protocol: unknown field\(s\) 'tag' under events; known fields"),
        ({"answers": {"thread_id": None}}, r"^HTTP protocol: answers\.thread_id must be a dotted field path"),
        ({"auth": "cookie"}, r"^HTTP protocol: auth must be one of bearer, header, query, none"),
        ({"terminal_events": {"done": "finished"}}, r"terminal_events\.done must be one of pending, running, succ"),
        ({"terminal_events": {}}, r"terminal_events must name at least one event"),
        ({"statuses": {"done": "ok"}}, r"^HTTP protocol: statuses\.done must be one of"),
        ({"policies": {"queue": "q"}}, r"^HTTP protocol: policies\.queue is not a policy: use reject, enqueue"),
        ({"refusal_statuses": [200]}, r"refusal_statuses must be a list of HTTP error statuses"),
        ({"messages_per_run": "input.count"}, r"messages_per_run is the path 'input\.count' into the run request"),
        ({"messages_per_run": -1}, r"messages_per_run must be a whole number of at least 0"),
        ({"requests": {"resume_stream": None}}, r"resume is on, but requests\.resume_stream is null"),
        ({"started_events": ["run_completed"]}, r"the event 'run_completed' is in both started_events and terminal"),
        ({"token": {"aud": "x"}}, r"^HTTP protocol: token\.unknown key\(s\) 'aud'"),
        ({"token": {"algorithm": "RS256"}}, r"^HTTP protocol: token\.algorithm must be one of HS256"),
        ({"resume": "yes"}, r"^HTTP protocol: resume must be true or false"),
    ],
)
def test_each_mistake_fails_when_loaded_naming_the_key(data: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigurationError, match=error):
        load(**data)


def test_a_base_url_that_is_not_http_and_a_file_that_is_not_json_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"base_url must start with http:// or https://.*'ws://x'"):
        HttpProtocol.from_dict({}, base_url="ws://x")
    with pytest.raises(ConfigurationError, match=r"base_url is missing and no agent service is in use"):
        HttpProtocol.from_dict({})
    bad = tmp_path / "p.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigurationError, match=r"^The HTTP protocol in .*p\.json is not valid JSON"):
        HttpProtocol.load(str(bad), base_url=BASE)
    with pytest.raises(ConfigurationError, match=r"^An HTTP protocol must be a JSON object, got list"):
        HttpProtocol.from_dict([1], base_url=BASE)  # type: ignore[arg-type]


def feed(text: str) -> list[SseEvent]:
    parser = SseParser()
    return [event for line in text.splitlines(keepends=True) if (event := parser.line(line)) is not None]


def test_sse_events_are_split_at_blank_lines_with_their_name_data_and_last_id() -> None:
    text = (
        ": keep-alive\n\n"
        'event: run_started\nid: r-1:1\ndata: {"seq": 1}\n\n'
        "data:first\ndata: second\r\n\r\n"
        "event: empty\n\n"
        "id: r-1:3\nevent: run_completed\ndata: {}\n\n"
        "data: cut off"
    )
    assert feed(text) == [
        SseEvent("run_started", '{"seq": 1}', "r-1:1"),
        SseEvent("message", "first\nsecond", "r-1:1"),  # the last id stays until another replaces it
        SseEvent("run_completed", "{}", "r-1:3"),
    ]
    parser = SseParser()
    parser.line("data: half")
    assert parser.pending and parser.line("id: a\0b") is None and parser.last_id is None


def test_the_tool_talks_to_base_url_else_the_http_address_of_the_agent_service_in_use() -> None:
    from types import SimpleNamespace

    from stampede_robot.keywords.http_agents import _service_url

    serving = SimpleNamespace(http_url="http://127.0.0.1:4001/")  # an AgentServiceTarget that serves HTTP too
    websocket_only = SimpleNamespace(url="ws://127.0.0.1:4000/", http_url=None)
    assert _service_url("http://given/api", serving) == ("http://given/api", "given as base_url")  # type: ignore[arg-type]
    assert _service_url(None, serving) == (  # type: ignore[arg-type]
        "http://127.0.0.1:4001/",
        "the agent service in use, see Use Agent Service",
    )
    assert _service_url(None, websocket_only) == (None, "")  # type: ignore[arg-type]
    assert _service_url(None, None) == (None, "")


def run_list(protocol: HttpProtocol, *runs: dict[str, Any]) -> list[ServiceRun]:
    return list(service_runs(protocol, {"turns" if protocol.answers.runs == "turns" else "runs": list(runs)}, "t-1"))


def test_a_listed_runs_marker_and_times_are_read_where_the_service_gives_them() -> None:
    reference = reference_service(BASE)
    (run,) = run_list(
        reference,
        {
            "run_id": "run-1",
            "status": "success",
            "marker": "m-1",
            "started_at": 1700000000.25,
            "ended_at": "1700000001",
        },
    )
    assert (run.marker, run.started_at, run.ended_at, run.status) == (
        "m-1",
        1700000000.25,
        1700000001.0,
        RunStatus.SUCCESS,
    )
    answers = {"runs": "turns", "run_id": "id", "run_status": "state", "run_marker": "tag", "run_ended_at": None}
    iso = HttpProtocol.from_dict({"answers": answers, "statuses": {"done": "success"}}, base_url=BASE)
    (run,) = run_list(iso, {"id": "t-3", "state": "done", "tag": "m-3", "started_at": "2026-12-03T12:00:00Z"})
    assert (run.marker, run.started_at, run.ended_at) == ("m-3", 1796299200.0, None)
    (run,) = run_list(HttpProtocol.load(str(TANDEM), base_url=BASE), {"id": "t-4", "state": "done"})
    assert (run.run_id, run.marker, run.started_at, run.ended_at) == ("t-4", None, None, None)  # optional


def test_a_listed_run_time_that_is_no_time_names_its_path() -> None:
    with pytest.raises(ThreadReadFailed, match=r"answers\.run_started_at \('started_at'\) is \"soon\", not a time"):
        run_list(reference_service(BASE), {"run_id": "run-1", "status": "running", "started_at": "soon"})
