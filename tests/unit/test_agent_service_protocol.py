"""The reference agent service's pure parts (bug switches, token checks, client frames, settings) and how the
harness learns its options without importing it."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import timedelta
from typing import Any

import jwt
import pytest

from reference_agent_service.__main__ import build_parser
from reference_agent_service.auth import ISSUER, TokenError, verify_token
from reference_agent_service.bugs import Bug, parse_bugs
from reference_agent_service.errors import ConfigurationError as ServiceConfigurationError
from reference_agent_service.protocol import (
    ClientType,
    ErrorCode,
    Hello,
    Ping,
    ProtocolError,
    RunRequest,
    hello_frame,
    parse_client_message,
    send_message_frame,
    start_run_frame,
)
from reference_agent_service.settings import ServiceSettings
from stampede.errors import ConfigurationError, ServiceUnavailable
from stampede.services.embedded_agent_service import EmbeddedAgentService
from stampede.services.reference_options import reference_options
from stampede.services.tokens import issue_token, new_secret

SECRET = new_secret()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("leak,reorder", {Bug.LEAK, Bug.REORDER}),
        (" Never-Answer , lost update ", {Bug.NEVER_ANSWER, Bug.LOST_UPDATE}),
        (["duplicate_run_ids", Bug.GLOBAL_LOCK], {Bug.DUPLICATE_RUN_IDS, Bug.GLOBAL_LOCK}),
        (Bug.SECOND_SESSION, {Bug.SECOND_SESSION}),
        ("", set()),
        ("none", set()),
        (None, set()),
    ],
)
def test_bug_switches_parse_as_people_write_them(value: object, expected: set[Bug]) -> None:
    assert parse_bugs(value) == expected  # type: ignore[arg-type]


def test_an_unknown_bug_switch_names_the_known_ones() -> None:
    with pytest.raises(
        ServiceConfigurationError,
        match=r"Unknown agent service bug switch 'leek'.*known switches are "
        r"leak, lost_update, never_answer, .*second_session",
    ):
        parse_bugs("leak,leek")


def test_the_harness_learns_every_bug_switch_and_setting_from_the_service_itself() -> None:
    options = reference_options()
    assert options.bugs == {bug.value: bug.description for bug in Bug}
    assert all(options.bugs.values())
    assert {name: spec.default for name, spec in options.settings.items()} == dataclasses.asdict(ServiceSettings())
    assert options.parse_bugs(" Never-Answer , lost update ") == {"never_answer", "lost_update"}
    assert options.parse_bugs("none") == frozenset()


def test_the_command_line_the_harness_builds_is_the_one_the_service_reads() -> None:
    options = reference_options()
    chosen = options.complete_settings({"think_ms": 0, "pg_pool_size": 3})
    args = build_parser().parse_args(options.argv({"reorder", "leak"}, chosen))
    assert parse_bugs(args.bugs) == {Bug.LEAK, Bug.REORDER}
    assert ServiceSettings.from_namespace(args) == ServiceSettings(think_ms=0, pg_pool_size=3)
    assert build_parser().parse_args(options.argv((), chosen)).bugs == "none"


def test_a_token_round_trips_to_its_user() -> None:
    token = issue_token(SECRET, "alice")
    assert verify_token(SECRET, token).user_id == "alice"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (issue_token(SECRET, "alice", ttl=timedelta(seconds=-5)), "expired"),
        (issue_token(new_secret(), "alice"), "signature does not match"),
        ("not.a.jwt", "not a well-formed JWT"),
        (
            jwt.encode({"sub": "alice", "iss": ISSUER, "iat": 0, "exp": 2**40}, "k" * 64, algorithm="HS512"),
            "not signed with HS256",
        ),
        (
            jwt.encode({"sub": "alice", "iss": "someone-else", "iat": 0, "exp": 2**40}, SECRET, algorithm="HS256"),
            "not issued by",
        ),
        (jwt.encode({"sub": "alice", "iss": ISSUER, "iat": 0}, SECRET, algorithm="HS256"), "no 'exp' claim"),
        (jwt.encode({"sub": "", "iss": ISSUER, "iat": 0, "exp": 2**40}, SECRET, algorithm="HS256"), "subject"),
    ],
)
def test_a_refused_token_says_why(token: str, reason: str) -> None:
    with pytest.raises(TokenError, match=reason):
        verify_token(SECRET, token)


def test_an_unsigned_token_is_refused() -> None:
    unsigned = jwt.encode({"sub": "alice", "iss": ISSUER, "iat": 0, "exp": 2**40}, None, algorithm="none")
    with pytest.raises(TokenError):
        verify_token(SECRET, unsigned)


def test_a_short_secret_or_a_bad_user_id_is_refused_when_issuing() -> None:
    with pytest.raises(ConfigurationError, match="at least 32 characters"):
        issue_token("short", "alice")
    with pytest.raises(ConfigurationError, match="user id"):
        issue_token(SECRET, " ")


def test_client_frames_parse_into_messages() -> None:
    assert parse_client_message(hello_frame("tok")) == Hello("tok")
    assert parse_client_message(hello_frame("tok", resume_token="r", last_seq=0)) == Hello("tok", "r", 0)
    assert parse_client_message('{"type": "ping", "request_id": "p"}') == Ping("p")
    run = parse_client_message(start_run_frame("t1", "m1", {"b": [1, "é"]}, request_id="r1", cost=3))
    assert run == RunRequest(ClientType.START_RUN, "t1", "m1", '{"b":[1,"é"]}', "r1", 3)
    assert isinstance(run, RunRequest) and run.content_bytes == len('{"b":[1,"é"]}'.encode())
    assert parse_client_message(start_run_frame("t1", "m1", "plain")).content == "plain"  # type: ignore[union-attr]
    assert parse_client_message(start_run_frame("t1", "m1")).content == ""  # type: ignore[union-attr]
    message = parse_client_message(send_message_frame("t1", "m1", "hi"))
    assert message == RunRequest(ClientType.SEND_MESSAGE, "t1", "m1", "hi")


@pytest.mark.parametrize(
    ("frame", "code", "says"),
    [
        ("{nope", ErrorCode.BAD_JSON, "not JSON"),
        (b"\x00\x01", ErrorCode.BAD_MESSAGE, "binary frames"),
        ("[1, 2]", ErrorCode.BAD_MESSAGE, "JSON object, got list"),
        ('{"thread_id": "t"}', ErrorCode.BAD_MESSAGE, "needs a 'type'"),
        ('{"type": "dance"}', ErrorCode.UNKNOWN_TYPE, "unknown type 'dance': use one of hello, start_run"),
        ('{"type": "hello"}', ErrorCode.BAD_MESSAGE, "'token' must be the JWT"),
        ('{"type": "hello", "token": "t", "resume_token": "r"}', ErrorCode.BAD_MESSAGE, "together"),
        ('{"type": "hello", "token": "t", "resume_token": "r", "last_seq": -1}', ErrorCode.BAD_MESSAGE, "last_seq"),
        ('{"type": "start_run", "marker": "m"}', ErrorCode.BAD_MESSAGE, "'thread_id' must be a string .* got missing"),
        ('{"type": "start_run", "thread_id": 7, "marker": "m"}', ErrorCode.BAD_MESSAGE, "got int"),
        (json.dumps({"type": "start_run", "thread_id": "t", "marker": "m" * 201}), ErrorCode.BAD_MESSAGE, "'marker'"),
        ('{"type": "start_run", "thread_id": "t", "marker": "m", "cost": -1}', ErrorCode.BAD_MESSAGE, "'cost'"),
        ('{"type": "start_run", "thread_id": "t", "marker": "m", "cost": true}', ErrorCode.BAD_MESSAGE, "'cost'"),
        ('{"type": "send_message", "thread_id": "t", "marker": "m"}', ErrorCode.BAD_MESSAGE, "'text'"),
    ],
)
def test_a_malformed_frame_gets_an_error_code_and_a_reason(frame: str | bytes, code: ErrorCode, says: str) -> None:
    with pytest.raises(ProtocolError, match=says) as caught:
        parse_client_message(frame)
    assert caught.value.code is code


def test_a_frame_error_keeps_the_request_id_to_answer_to() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_message('{"type": "send_message", "thread_id": "t", "marker": "m", "request_id": "r9"}')
    assert caught.value.request_id == "r9"


def test_settings_round_trip_through_the_command_line() -> None:
    settings = ServiceSettings(think_ms=0, pg_pool_size=3, resume_window_ms=500)
    parser = argparse.ArgumentParser()
    ServiceSettings.add_arguments(parser)
    assert ServiceSettings.from_namespace(parser.parse_args(settings.to_argv())) == settings


@pytest.mark.parametrize("bad", [{"think_ms": -1}, {"pg_pool_size": 0}, {"run_cost": True}, {"replay_buffer": 1.5}])
def test_settings_refuse_values_that_cannot_work(bad: dict[str, object]) -> None:
    with pytest.raises(ServiceConfigurationError, match=f"setting {next(iter(bad))} must be a whole number"):
        ServiceSettings(**bad)  # type: ignore[arg-type]


def test_the_embedded_service_checks_its_input_before_starting() -> None:
    def service(**overrides: Any) -> EmbeddedAgentService:
        options: dict[str, Any] = {
            "pg_dsn": "postgresql://db/x",
            "pg_schema": "stampede_run",
            "redis_url": "redis://cache/0",
            "redis_prefix": "stampede:run:",
            **overrides,
        }
        return EmbeddedAgentService(**options)

    with pytest.raises(ConfigurationError, match="Unknown agent service bug switch 'leek'"):
        service(bugs="leek")
    with pytest.raises(ConfigurationError, match="no setting pg_pool: its settings are think_ms, initial_credits"):
        service(settings={"pg_pool": 3})
    with pytest.raises(ConfigurationError, match="setting pg_pool_size must be a whole number of at least 1, got 0"):
        service(settings={"pg_pool_size": 0})
    with pytest.raises(ServiceUnavailable, match="not running: call start"):
        service().token_for("alice")
