"""Every ``Resource`` import of the suites, the test suites and the shared resources resolves as Robot resolves it.

The shared resources live in the package (``libraries/stampede_robot/resources/``) and are imported as
``stampede_robot/resources/<name>.resource``, found on Python's path: the line a user of an installed
Stampede writes. An import by a path relative to the old top-level ``resources/`` folder fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from robot.api.parsing import ModelVisitor, get_model, get_resource_model
from robot.errors import DataError
from robot.parsing.model.statements import ResourceImport
from robot.utils import find_file

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    [
        *ROOT.glob("suites/**/*.robot"),
        *ROOT.glob("tests/acceptance/robot/**/*.robot"),
        *ROOT.glob("libraries/stampede_robot/resources/*.resource"),
    ]
)


class _ResourceImports(ModelVisitor):
    def __init__(self) -> None:
        self.names: list[str] = []

    def visit_ResourceImport(self, node: ResourceImport) -> None:
        self.names.append(node.name)


def _imports(path: Path) -> list[str]:
    model = (get_resource_model if path.suffix == ".resource" else get_model)(path)
    visitor = _ResourceImports()
    visitor.visit(model)
    return visitor.names


def test_there_are_suites_and_shared_resources_to_check() -> None:
    assert len(FILES) > 30 and any(path.suffix == ".resource" for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_resource_import_resolves(path: Path) -> None:
    missing = []
    for name in _imports(path):
        try:
            found = Path(find_file(name, str(path.parent), "Resource file"))
        except DataError:
            missing.append(name)
            continue
        if not found.is_relative_to(ROOT):  # say, another checkout's file, through a folder on the path
            missing.append(f"{name} (found only outside this checkout, as {found})")
    assert not missing, (
        f"{path.relative_to(ROOT)} imports {missing}, not a file of this checkout as Robot resolves it: the shared "
        "resources are imported as 'Resource    stampede_robot/resources/<name>.resource'"
    )
