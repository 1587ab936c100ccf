"""The wheel's dependency ranges (pyproject.toml) and the checkout's exact pins (requirements.txt) agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _ranges() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {canonicalize_name(req.name): req for req in map(Requirement, project["dependencies"])}


def _pins() -> list[Requirement]:
    lines = (
        line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    )
    return [Requirement(line) for line in lines if line]


def test_every_pinned_runtime_package_is_a_dependency_of_the_wheel_whose_range_admits_the_pin() -> None:
    ranges = _ranges()
    problems = []
    for pin in _pins():
        (spec,) = pin.specifier
        assert spec.operator == "==", f"requirements.txt pins exact versions: {pin}"
        wanted = ranges.get(canonicalize_name(pin.name))
        if wanted is None:
            problems.append(f"{pin.name} is pinned in requirements.txt but not a dependency in pyproject.toml")
        elif not wanted.specifier.contains(spec.version, prereleases=True):
            problems.append(f"{pin.name}=={spec.version} is outside pyproject.toml's range {wanted.specifier}")
        elif str(wanted.marker) != str(pin.marker):
            problems.append(f"{pin.name}: marker {pin.marker} in requirements.txt, {wanted.marker} in pyproject.toml")
    assert not problems, "\n".join(problems)


def test_every_dependency_is_a_compatible_range_with_an_upper_bound() -> None:
    unbounded = [str(req) for req in _ranges().values() if not any(s.operator == "<" for s in req.specifier)]
    assert not unbounded, f"give these an upper bound (the next major): {unbounded}"
