"""The three parts keep to their layers: no import cycle between the engine's subpackages, no engine module
importing Robot, the keyword layer or the reference service, and a reference service that imports nothing of
Stampede's (a third-party service could not)."""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

LIBRARIES = Path(__file__).resolve().parents[2] / "libraries"
KEYWORD_LAYER = frozenset({"stampede_robot", "ConcurrentAgents", "LockConflicts", "MetricsThresholds", "TestServices"})
FORBIDDEN = {
    "stampede": frozenset({"robot", "reference_agent_service", "reference_mcp_server"} | KEYWORD_LAYER),
    "reference_agent_service": frozenset({"robot", "stampede", "reference_mcp_server"} | KEYWORD_LAYER),
    "reference_mcp_server": frozenset({"robot", "stampede"} | KEYWORD_LAYER),
}


@dataclass(frozen=True)
class Import:
    source: str
    """The importing module, dotted."""
    target: str
    """The imported module, dotted and absolute."""
    where: str
    """``path:line``, for the message."""


def _module_name(path: Path, root: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports_under(root: Path) -> list[Import]:
    """Every import statement of every module under ``root`` (type-checking-only ones too), made absolute."""
    found = []
    for path in sorted(root.rglob("*.py")):
        name = _module_name(path, root)
        package = name if path.name == "__init__.py" else name[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                targets = [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
            else:
                continue
            where = f"{path.relative_to(root)}:{node.lineno}"
            found += [Import(".".join(name), target, where) for target in targets]
    return found


def layer(module: str) -> str:
    """The unit the cycle rule is about: ``stampede.<subpackage or module>``, else the top-level name."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "stampede" and len(parts) > 1 else parts[0]


def cycles(found: list[Import]) -> list[list[str]]:
    """Each group of layers that import one another in a ring (Tarjan's strongly connected components)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for item in found:
        source, target = layer(item.source), layer(item.target)
        if source != target and target.split(".")[0] in {
            "stampede",
            "stampede_robot",
            "reference_agent_service",
            "reference_mcp_server",
        }:
            edges[source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def cycle_report(found: list[Import]) -> list[str]:
    """One line per import that closes a ring, naming the file and line."""
    lines = []
    for group in cycles(found):
        members = set(group)
        inside = [
            item
            for item in found
            if layer(item.source) in members
            and layer(item.target) in members
            and layer(item.source) != layer(item.target)
        ]
        lines.append(
            f"{' ⇄ '.join(group)}: "
            + "; ".join(f"{item.where} {layer(item.source)} → {item.target}" for item in inside[:6])
        )
    return lines


def forbidden_imports(found: list[Import]) -> list[str]:
    """Imports that break a part's rule: the engine reaching up, the reference service reaching in."""
    lines = []
    for item in found:
        banned = FORBIDDEN.get(item.source.split(".")[0], frozenset())
        if item.target.split(".")[0] in banned:
            lines.append(f"{item.where}: {item.source} imports {item.target}")
    return lines


def test_the_libraries_have_no_import_cycle_between_subpackages() -> None:
    assert cycle_report(imports_under(LIBRARIES)) == []


def test_the_engine_and_the_reference_service_import_only_what_their_part_may() -> None:
    assert forbidden_imports(imports_under(LIBRARIES)) == []


def test_the_import_walk_sees_the_engine_and_relative_imports() -> None:
    found = imports_under(LIBRARIES)
    assert any(item.source == "stampede.checkers.ledger" and item.target == "stampede.history" for item in found)
    assert {layer(item.source) for item in found} >= {"stampede.checkers", "stampede.workloads", "stampede_robot"}


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "importer",
    [
        "from ..checkers.ledger import check_ledger\n",
        "from stampede.checkers import ledger\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..checkers.ledger import check_ledger\n",
    ],
)
def test_a_planted_cycle_is_reported_with_the_file_that_closes_it(tmp_path: Path, importer: str) -> None:
    root = _plant(
        tmp_path,
        {
            "stampede/__init__.py": "",
            "stampede/checkers/__init__.py": "",
            "stampede/checkers/ledger.py": "from ..workloads.credits import CreditTool\n",
            "stampede/workloads/__init__.py": "",
            "stampede/workloads/credits.py": importer,
        },
    )
    (report,) = cycle_report(imports_under(root))
    assert report.startswith("stampede.checkers ⇄ stampede.workloads: ")
    assert "workloads/credits.py" in report and "checkers/ledger.py:1" in report


def test_a_planted_import_of_robot_or_of_the_reference_service_is_reported(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "stampede/__init__.py": "",
            "stampede/metrics.py": "from robot.api import logger\n",
            "stampede/services/agents.py": "import reference_agent_service.bugs\n",
            "reference_agent_service/server.py": "from stampede.errors import ConfigurationError\n",
        },
    )
    assert forbidden_imports(imports_under(root)) == [
        "reference_agent_service/server.py:1: reference_agent_service.server imports stampede.errors",
        "stampede/metrics.py:1: stampede.metrics imports robot.api",
        "stampede/services/agents.py:1: stampede.services.agents imports reference_agent_service.bugs",
    ]
