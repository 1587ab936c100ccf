"""The WebSocket protocol configuration: defaults, loading, templates, field paths, and bad input named."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import jwt
import pytest

from reference_agent_service.auth import verify_token
from stampede.errors import ConfigurationError
from stampede.services.tokens import TokenSpec, issue_token, new_secret
from stampede.workloads.websocket_agents import WebSocketAgentTool
from stampede.workloads.websocket_fields import FieldPathError, FieldPaths, lookup, lookup_optional, shorten
from stampede.workloads.websocket_protocol import AuthMode, WebSocketProtocol, reference_service
from stampede.workloads.websocket_sessions import refuses_the_token
from stampede.workloads.websocket_templates import compiled, compiled_text, placeholders_in, render

URL = "ws://127.0.0.1:8765/"
RUN_EVENT = {
    "type": "agent_thinking",
    "seq": 3,
    "user_id": "alice",
    "run_id": "run-1",
    "thread_id": "t1",
    "marker": "m-alice",
    "request_id": "r1",
    "think_ms": 50,
}

# The reference default


def test_the_reference_protocol_is_the_default() -> None:
    protocol = reference_service(URL)
    assert protocol == WebSocketProtocol(url=URL)
    assert protocol.auth is AuthMode.HELLO and protocol.ready_event == "session_started"
    assert protocol.run_events == (
        "agent_started",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "agent_completed",
    )
    assert protocol.done_events == ("agent_completed",) and protocol.failed_events == ("agent_failed",)
    assert protocol.needs_token() and protocol.can_resume


def test_defaults_are_not_shared_between_instances() -> None:
    first, second = reference_service(URL), reference_service(URL)
    first.start["extra"] = 1
    assert "extra" not in second.start


def test_fields_of_a_run_event() -> None:
    fields = reference_service(URL).fields_of(RUN_EVENT)
    assert (fields.type, fields.seq, fields.user, fields.marker, fields.run_id, fields.request) == (
        "agent_thinking",
        3,
        "alice",
        "m-alice",
        "run-1",
        "r1",
    )
    assert fields.session_id is None and fields.error_code is None


def test_fields_of_session_and_error_events() -> None:
    protocol = reference_service(URL)
    started = protocol.fields_of(
        {"type": "session_started", "seq": 1, "session_id": "s1", "user_id": "alice", "resume_token": "x"}
    )
    assert (started.session_id, started.user, started.marker) == ("s1", "alice", None)
    refusal = protocol.fields_of({"type": "error", "seq": None, "code": "auth_failed", "message": "no"})
    assert (refusal.seq, refusal.error_code) == (None, "auth_failed")
    assert protocol.resume_token_of({"type": "session_started", "resume_token": "tok"}) == "tok"


# Templates


def test_a_whole_placeholder_keeps_the_value_type_and_text_is_filled_in() -> None:
    template = {
        "type": "hello",
        "token": "{token}",
        "last_seq": "{last_seq}",
        "note": "{user} says {{hi}}",
        "nested": [{"m": "{marker}-{iteration}"}],
        "fixed": 7,
    }
    rendered = render(template, {"token": "T", "last_seq": 5, "user": "alice", "marker": "m", "iteration": 2})
    assert rendered == {
        "type": "hello",
        "token": "T",
        "last_seq": 5,
        "note": "alice says {hi}",
        "nested": [{"m": "m-2"}],
        "fixed": 7,
    }
    assert placeholders_in(template) == {"token", "last_seq", "user", "marker", "iteration"}
    values = {"token": "T", "last_seq": 5, "user": "alice", "marker": "m", "iteration": 2}
    assert compiled(template)(values) == rendered, "a compiled template renders as render() does"
    assert compiled_text("{{{user}}}:{marker}}}{{", repr)(values) == "{'alice'}:'m'}{", "braces, convert"
    assert compiled_text("plain")(values) == "plain" and compiled_text("{user}")(values) == "alice"


def test_reference_templates_render_into_protocol_frames() -> None:
    protocol = reference_service(URL)
    values = {
        "thread": "t1",
        "marker": "m",
        "context": {"big": "x" * 10},
        "request": "r1",
        "text": "hi",
        "token": "T",
        "resume_token": "rt",
        "last_seq": 0,
    }
    assert render(protocol.start, values) == {
        "type": "start_run",
        "thread_id": "t1",
        "marker": "m",
        "context": {"big": "x" * 10},
        "request_id": "r1",
    }
    assert render(protocol.resume, values)["last_seq"] == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"start": {"type": "go", "who": "{usr}"}}, r"start template uses \{usr\}, which is not a placeholder"),
        ({"message": {"seq": "{last_seq}"}}, r"message template uses \{last_seq\}"),
        (
            {"auth": "header", "header_value": "Token {tokn}", "ready_event": None},
            r"header_value template uses \{tokn\}",
        ),
    ],
)
def test_unknown_placeholders_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WebSocketProtocol.from_dict({"url": URL, **data})


# Field paths


def test_dotted_paths_reach_into_objects_and_lists() -> None:
    message = {"meta": {"seq": 4, "user": {"id": "bob"}}, "events": [{"type": "done"}]}
    assert lookup(message, "meta.seq") == 4
    assert lookup(message, "meta.user.id") == "bob"
    assert lookup(message, "events.0.type") == "done"
    assert lookup_optional(message, "meta.missing") is None
    assert lookup_optional(message, None) is None


def test_a_path_that_matches_nothing_names_the_path_and_shows_the_message() -> None:
    message = {"meta": {"seq": 4}, "kind": "started"}
    with pytest.raises(FieldPathError) as caught:
        lookup(message, "meta.sequence", what="fields.seq, the sequence number")
    text = str(caught.value)
    assert "'meta.sequence' (fields.seq, the sequence number) matches no field" in text
    assert "nothing under 'meta', the fields there are seq" in text
    assert '{"meta":{"seq":4},"kind":"started"}' in text
    assert "Fix the path" in text
    with pytest.raises(FieldPathError, match="nothing at the top level, the fields there are meta, kind"):
        lookup(message, "type")
    with pytest.raises(FieldPathError, match="a int there, not an object"):
        lookup(message, "meta.seq.value")


def test_a_long_message_is_shortened_in_the_error() -> None:
    with pytest.raises(FieldPathError) as caught:
        lookup({"blob": "x" * 5000}, "type")
    assert "... (5011 characters)" in str(caught.value) and len(str(caught.value)) < 700


def test_a_run_event_must_carry_every_configured_field() -> None:
    protocol = WebSocketProtocol.from_dict({"url": URL, "fields": {"user": "data.user"}})
    with pytest.raises(
        FieldPathError,
        match=r"'data.user' \(fields.user, the user id, in every agent_thinking "
        r"event\) matches no field",
    ):
        protocol.fields_of(RUN_EVENT)
    # Outside a run the user field is optional: a pong need not carry it.
    assert protocol.fields_of({"type": "pong", "seq": 2}).user is None


def test_type_and_seq_are_required_in_every_message_unless_seq_is_turned_off() -> None:
    protocol = reference_service(URL)
    with pytest.raises(FieldPathError, match=r"fields\.type"):
        protocol.fields_of({"event": "x", "seq": 1})
    with pytest.raises(FieldPathError, match=r"fields\.seq"):
        protocol.fields_of({"type": "pong"})
    without_seq = WebSocketProtocol.from_dict({"url": URL, "fields": {"seq": None}})
    assert without_seq.fields_of({"type": "pong"}).seq is None


# Loading


def test_a_custom_protocol_from_json_text_and_file(tmp_path: Path) -> None:
    data = {
        "url": "wss://agents.example.com/ws",
        "auth": "header",
        "header_value": "Bearer {token}",
        "ready_event": None,
        "hello": None,
        "message": None,
        "resume": None,
        "start": {"op": "run", "input": "{context}", "tag": "{marker}", "id": "{request}"},
        "fields": {
            "type": "event",
            "seq": "meta.seq",
            "user": "meta.user",
            "marker": "data.tag",
            "run_id": "data.run",
            "request": "data.id",
            "session_id": None,
            "resume_token": None,
        },
        "run_events": ["started", "finished"],
        "done_events": "finished",
        "failed_events": ["failed"],
    }
    from_text = WebSocketProtocol.load(json.dumps(data))
    path = tmp_path / "protocol.json"
    path.write_text(json.dumps(data))
    from_file = WebSocketProtocol.load(str(path))
    assert from_text == from_file
    assert from_file.auth is AuthMode.HEADER and from_file.done_events == ("finished",)
    assert from_file.fields == FieldPaths(
        type="event",
        seq="meta.seq",
        user="meta.user",
        marker="data.tag",
        run_id="data.run",
        request="data.id",
        session_id=None,
        resume_token=None,
    )
    assert not from_file.can_resume
    event = {"event": "finished", "meta": {"seq": 2, "user": "u1"}, "data": {"tag": "m", "run": "r", "id": "q"}}
    assert from_file.fields_of(event)[:6] == ("finished", 2, "u1", "m", "r", "q")
    assert WebSocketProtocol.load(path, url=URL).url == URL


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "url is missing"),
        ({"url": "http://host/"}, r"url must start with ws:// or wss://"),
        ({"url": URL, "auth": "cookie"}, "auth must be one of hello, header, query, none, got 'cookie'"),
        ({"url": URL, "done_event": "x"}, r"unknown key\(s\) 'done_event'; known keys are"),
        ({"url": URL, "fields": {"sequence": "seq"}}, r"unknown field\(s\) 'sequence' under fields"),
        ({"url": URL, "fields": {"seq": "a..b"}}, r"fields.seq must be a dotted field path"),
        ({"url": URL, "fields": {"type": None}}, r"fields.type must be a dotted field path"),
        ({"url": URL, "done_events": []}, "done_events must name at least one event type"),
        ({"url": URL, "run_events": [1]}, "run_events must hold event type names"),
        ({"url": URL, "ready_event": 5}, "ready_event must be an event type or null"),
        ({"url": URL, "hello": None}, "auth 'hello' needs a hello template"),
        ({"url": URL, "start": None}, "start must be the template"),
        ({"url": URL, "auth": "query", "query_param": "", "ready_event": None}, "auth 'query' needs a query_param"),
        (["not", "an", "object"], "must be a JSON object, got list"),
    ],
)
def test_bad_configurations_say_what_to_fix(data: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WebSocketProtocol.from_dict(data)  # type: ignore[arg-type]


def test_bad_sources_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"Cannot read the WebSocket protocol file .*missing.json"):
        WebSocketProtocol.load(tmp_path / "missing.json")
    with pytest.raises(ConfigurationError, match="The WebSocket protocol in the JSON text is not valid JSON"):
        WebSocketProtocol.load('{"url": ')


def test_the_tool_refuses_settings_that_cannot_work() -> None:
    protocol = reference_service(URL)
    with pytest.raises(ConfigurationError, match=r"sends a token .* give tokens"):
        WebSocketAgentTool(protocol)
    with pytest.raises(ConfigurationError, match=r"answer timeout .* cannot be longer than the run timeout"):
        WebSocketAgentTool(protocol, tokens="t", answer_timeout=5, run_timeout=1)
    with pytest.raises(ConfigurationError, match="connect timeout must be longer than 0 s"):
        WebSocketAgentTool(protocol, tokens="t", connect_timeout=0)
    with pytest.raises(ConfigurationError, match="context size must be a whole number of at least 0"):
        WebSocketAgentTool(protocol, tokens="t", context_bytes=-1)
    with pytest.raises(ConfigurationError, match="drop_after_events must be a number of events of at least 1"):
        WebSocketAgentTool(protocol, tokens="t", drop_after_events=0)
    for cannot_resume in ({"resume": None}, {"ready_event": None}, {"fields": {"resume_token": None}}):
        no_resume = WebSocketProtocol.from_dict({"url": URL, **cannot_resume})
        with pytest.raises(ConfigurationError, match="Dropping connections needs a protocol that can resume"):
            WebSocketAgentTool(no_resume, tokens="t", drop_after_events=2)
    anonymous = WebSocketProtocol.from_dict({"url": URL, "auth": "none", "hello": None, "ready_event": None})
    assert not anonymous.needs_token()
    assert WebSocketAgentTool(anonymous).operation_bound == 10 + 10 + 30 + 2
    welcomed = WebSocketProtocol.from_dict({"url": URL, "auth": "none", "hello": None, "ready_event": "welcome"})
    assert WebSocketAgentTool(welcomed).drop_after_events is None
    with pytest.raises(ConfigurationError, match="sends a token"):  # the resume template holds {token}
        WebSocketAgentTool(welcomed, drop_after_events=2)


def test_a_quoted_message_hides_its_secrets() -> None:
    message = {"type": "session_started", "resume_token": "r3sume", "data": [{"access_token": "t0k"}], "seq": 1}
    shown = shorten(message)
    assert "r3sume" not in shown and "t0k" not in shown
    assert '"resume_token":"<hidden>"' in shown and '"seq":1' in shown


# Item 12 of issue 12: the token is configuration; items 9 and 13: mistakes refused when loaded


def test_the_default_token_is_what_the_reference_service_accepts() -> None:
    secret = new_secret()
    protocol = reference_service(URL)
    assert protocol.token == TokenSpec() and protocol.token.lifetime == 3600
    token = issue_token(secret, "alice", spec=protocol.token)
    assert verify_token(secret, token).user_id == "alice"
    assert protocol.describe()["token"] == "user id in sub, iss stampede-agent-service, HS256, valid 1 h"


def test_a_services_own_claims_are_configuration() -> None:
    protocol = WebSocketProtocol.from_dict(
        {
            "url": URL,
            "token": {
                "subject_claim": "user_id",
                "issuer": None,
                "audience": "other-agents",
                "claims": {"scope": "agents:run"},
                "algorithm": "HS512",
                "lifetime": "15 min",
            },
        }
    )
    with pytest.raises(ConfigurationError, match="The JWT secret must be at least 64 characters for HS512"):
        issue_token(new_secret(), "alice", spec=protocol.token)
    secret = secrets.token_urlsafe(64)
    token = issue_token(secret, "alice", spec=protocol.token, now=1_000_000)
    claims = jwt.decode(token, secret, algorithms=["HS512"], audience="other-agents", options={"verify_exp": False})
    assert claims == {
        "user_id": "alice",
        "aud": "other-agents",
        "scope": "agents:run",
        "iat": 1_000_000,
        "exp": 1_000_900,
    }


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ({"algorithm": "RS256"}, r"token\.algorithm must be one of HS256, HS384, HS512 .* got 'RS256'"),
        ({"subject": "user_id"}, r"token\.unknown key\(s\) 'subject'; known keys are subject_claim, issuer, "),
        ({"claims": {"exp": 5}}, r"token\.claims sets exp, which Stampede sets itself: use lifetime instead"),
        ({"subject_claim": "uid", "claims": {"uid": "x"}}, r"claims sets uid, .* use subject_claim instead"),
        ({"lifetime": "0 s"}, r"token\.lifetime must be longer than 0 s"),
        ({"audience": 7}, r"token\.audience must be a string"),
        ("user_id", r"token must be an object such as \{\"subject_claim\": \"user_id\"\}"),
    ],
)
def test_a_token_that_cannot_be_signed_says_what_to_fix(token: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WebSocketProtocol.from_dict({"url": URL, "token": token})


@pytest.mark.parametrize("auth", ["header", "query", "none"])
def test_an_auth_without_hello_that_still_waits_for_the_default_ready_event_is_refused(auth: str) -> None:
    # Once loaded silently: every session then waited answer_timeout for a session_started nobody sends.
    with pytest.raises(ConfigurationError, match=rf"auth '{auth}' sends no hello, yet ready_event is left at .*set "):
        WebSocketProtocol.from_dict({"url": URL, "auth": auth, "hello": None})
    assert WebSocketProtocol.from_dict({"url": URL, "auth": auth, "ready_event": "welcome"}).ready_event == "welcome"


def test_a_done_event_before_the_end_of_the_lifecycle_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="run_events lists the done event step before its end"):
        WebSocketProtocol.from_dict({"url": URL, "run_events": ["go", "step", "end"], "done_events": ["step"]})
    repeating = WebSocketProtocol.from_dict(
        {"url": URL, "run_events": ["started", "step", "tool", "step", "finished"], "done_events": ["finished"]}
    )
    assert repeating.run_events == ("started", "step", "tool", "step", "finished")


@pytest.mark.parametrize(
    ("code", "message", "refusal"),
    [
        ("token_expired", "log in again", True),
        ("auth_failed", None, True),
        ("error", "Invalid token: signature mismatch", True),
        ("forbidden", None, True),
        ("max_tokens_exceeded", "the context is over 8192 tokens", False),
        ("unknown_thread", "no such thread", False),
        (None, None, False),
    ],
)
def test_an_error_event_is_a_refusal_when_it_names_the_credentials(
    code: str | None, message: str | None, refusal: bool
) -> None:
    assert refuses_the_token(code, message) is refusal
