"""What an agent service URL looks like in a log, and which URLs are refused before anything connects."""

from __future__ import annotations

import asyncio

import pytest

from stampede.errors import ConfigurationError, ServiceUnavailable
from stampede.services.agent_service_target import connect_agent_service, display_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ws://127.0.0.1:8765/", "ws://127.0.0.1:8765/"),
        ("wss://agent:s3cret@agents.example/ws", "wss://agent:***@agents.example/ws"),
        ("ws://agents.example:80/ws?token=eyJhbGciOi.x.y", "ws://agents.example:80/ws?***"),
    ],
)
def test_display_url_hides_passwords_and_query_tokens(url: str, shown: str) -> None:
    assert display_url(url) == shown


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8765/", r"must be ws://host:port/path or wss://\.\.\., got 'http://127\.0\.0\.1:8765/'"),
        ("ws:///nohost", r"must be ws://host:port/path"),
        ("ws://127.0.0.1:99999/", r"Malformed agent service URL ws://127\.0\.0\.1:99999/: .*Write it as"),
    ],
)
def test_urls_that_cannot_name_a_websocket_service_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        asyncio.run(connect_agent_service(url))


def test_a_short_jwt_secret_is_refused_before_connecting() -> None:
    with pytest.raises(ConfigurationError, match="at least 32 characters"):
        asyncio.run(connect_agent_service("ws://127.0.0.1:9/", jwt_secret="short"))


@pytest.mark.parametrize(
    ("url", "http_url", "message"),
    [
        (
            None,
            None,
            r"No agent service URL: give its ws:// URL .* or its http:// URL \(http_url, \$\{AGENT_HTTP_URL\}",
        ),
        (None, "ws://127.0.0.1:8765/", r"HTTP URL must be http://host:port/path or https://\.\.\., got 'ws://"),
        ("ws://127.0.0.1:9/", "http:///nohost", r"HTTP URL must be http://host:port/path"),
    ],
)
def test_urls_that_cannot_name_an_http_api_are_refused(url: str | None, http_url: str | None, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        asyncio.run(connect_agent_service(url, http_url=http_url))


def test_an_http_url_where_nothing_listens_names_the_variables_to_fix() -> None:
    with pytest.raises(ServiceUnavailable, match=r"at the agent service URL http://127\.0\.0\.1:9/ .*AGENT_HTTP_URL"):
        asyncio.run(connect_agent_service(None, http_url="http://127.0.0.1:9/", timeout=2))
