"""The pure parts of fault injection: addresses, fractions, directions, routed URLs."""

from __future__ import annotations

import pytest

from stampede.errors import ConfigurationError
from stampede.faults.proxy import TO_CLIENT, TO_SERVER, Direction, FaultProxy, parse_address
from stampede.faults.routing import upstream_of, with_address
from stampede.faults.selection import parse_fraction, pick


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:5432", ("127.0.0.1", 5432)), (" db.example:6379 ", ("db.example", 6379)), ("[::1]:80", ("::1", 80))],
)
def test_an_address_is_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["localhost", ":5432", "host:", "host:port", "host:0", "host:65536", "mysql"])
def test_a_malformed_address_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"must be host:port \(for example 127\.0\.0\.1:5432\), got"):
        parse_address(text)


@pytest.mark.parametrize(
    ("text", "share"), [("all", 1.0), ("ALL", 1.0), ("50%", 0.5), ("12.5 %", 0.125), ("100%", 1.0)]
)
def test_a_fraction_is_all_or_a_percentage(text: str, share: float) -> None:
    assert parse_fraction(text) == share


@pytest.mark.parametrize("text", ["0%", "150%", "half", "0.5", "-10%", ""])
def test_a_fraction_outside_0_to_100_percent_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="fraction must be"):
        parse_fraction(text)


@pytest.mark.parametrize(
    ("count", "fraction", "picked"), [(10, 0.5, 5), (3, 0.5, 2), (1, 0.01, 1), (0, 1.0, 0), (7, 1.0, 7)]
)
def test_a_fraction_of_a_set_is_rounded_up_so_it_hits_something(count: int, fraction: float, picked: int) -> None:
    items = list(range(count))
    chosen = pick(items, fraction)
    assert len(chosen) == picked
    assert len(set(chosen)) == picked and set(chosen) <= set(items)


def test_latency_directions_name_the_ways_they_slow() -> None:
    assert Direction.BOTH.ways() == (TO_SERVER, TO_CLIENT)
    assert Direction.TO_CLIENT.ways() == (TO_CLIENT,)
    assert Direction.TO_SERVER.ways() == (TO_SERVER,)


def test_latency_is_set_per_direction_and_healed_away() -> None:
    proxy = FaultProxy("pg", "127.0.0.1", 5432)
    proxy.add_latency(0.05, Direction.TO_CLIENT)
    assert (proxy.latency(TO_SERVER), proxy.latency(TO_CLIENT)) == (0.0, 0.05)
    proxy.add_latency(0.02)
    assert (proxy.latency(TO_SERVER), proxy.latency(TO_CLIENT)) == (0.02, 0.02)
    proxy.heal()
    assert (proxy.latency(TO_SERVER), proxy.latency(TO_CLIENT)) == (0.0, 0.0)


@pytest.mark.parametrize("seconds", [0.0, -0.1])
def test_no_latency_is_added_by_a_delay_of_no_length(seconds: float) -> None:
    with pytest.raises(ConfigurationError, match="added latency must be longer than 0 s"):
        FaultProxy("pg", "127.0.0.1", 5432).add_latency(seconds)


def test_a_partition_is_recorded_until_the_heal() -> None:
    proxy = FaultProxy("pg", "127.0.0.1", 5432)
    assert not proxy.partitioned and proxy.partitioned_since_ns is None
    proxy.partition()
    since = proxy.partitioned_since_ns
    assert proxy.partitioned and since is not None
    proxy.partition()
    assert proxy.partitioned_since_ns == since, "partitioning twice keeps when it began"
    proxy.heal()
    assert not proxy.partitioned and proxy.partitioned_since_ns is None


@pytest.mark.parametrize(
    ("url", "routed"),
    [
        (
            "postgresql://app:s3cret@db.example:5432/test?sslmode=disable",
            "postgresql://app:s3cret@127.0.0.1:40001/test?sslmode=disable",
        ),
        ("redis://:pw@cache:6379/2", "redis://:pw@127.0.0.1:40001/2"),
        ("postgresql://db.example/test", "postgresql://127.0.0.1:40001/test"),
    ],
)
def test_a_routed_url_keeps_everything_but_the_address(url: str, routed: str) -> None:
    assert with_address(url, "127.0.0.1", 40001) == routed


def test_the_upstream_of_a_url_defaults_its_port() -> None:
    assert upstream_of("postgresql://u:p@db.example/test", 5432, service="PostgreSQL") == ("db.example", 5432)
    assert upstream_of("redis://cache:6380/0", 6379, service="Redis") == ("cache", 6380)


@pytest.mark.parametrize(
    "url",
    ["postgresql://u:s3cret@h1:5432,h2:5432/db", "postgresql:///db?host=/var/run/postgresql", "unix:///tmp/r.sock"],
)
def test_a_url_without_one_tcp_address_cannot_be_proxied_and_its_password_is_masked(url: str) -> None:
    with pytest.raises(ConfigurationError, match="one TCP host and port") as raised:
        upstream_of(url, 5432, service="PostgreSQL")
    assert "s3cret" not in str(raised.value)
