"""The run id names a run's schema, key prefix and connections: random, or given by STAMPEDE_RUN_ID."""

from __future__ import annotations

import re

import pytest

from stampede.errors import ConfigurationError
from stampede.services.config import RUN_ID_ENV, resolve_run_id


def test_without_the_variable_each_run_gets_a_fresh_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUN_ID_ENV, raising=False)
    first, second = resolve_run_id(), resolve_run_id()
    assert re.fullmatch(r"[0-9a-f]{8}", first) and first != second


def test_the_variable_names_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_ID_ENV, " nightly_42 ")
    assert resolve_run_id() == "nightly_42"


def test_an_id_that_cannot_name_a_schema_says_which_variable_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "Nightly-42")
    with pytest.raises(ConfigurationError, match=r"^STAMPEDE_RUN_ID: run id must be 1 to 54 characters of a-z"):
        resolve_run_id()


def test_processes_sharing_the_variable_get_ids_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "nightly_42")
    assert [resolve_run_id("p0"), resolve_run_id("p1")] == ["nightly_42_p0", "nightly_42_p1"]


def test_a_process_suffix_that_makes_the_id_too_long_says_which_variable_to_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "n" * 54)
    with pytest.raises(ConfigurationError, match=r"^STAMPEDE_RUN_ID: run id must be 1 to 54 characters"):
        resolve_run_id("p1")
