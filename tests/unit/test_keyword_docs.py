"""Every keyword of every Stampede library has a libdoc summary and an example table, and its page and spec in docs/."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from robot.libdoc import LibraryDocumentation

import stampede

LIBRARIES = ["TestServices", "ConcurrentAgents", "LockConflicts", "MetricsThresholds"]


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_keyword_has_documentation_with_an_example(library: str) -> None:
    documentation = LibraryDocumentation(library)
    assert documentation.doc.strip(), f"{library} has no library documentation"
    assert documentation.keywords, f"{library} has no keywords"
    for keyword in documentation.keywords:
        assert keyword.short_doc.strip(), f"{library}.{keyword.name} has no documentation"
        assert "\n|" in keyword.doc or keyword.doc.startswith("|"), f"{library}.{keyword.name} has no example table"


ROOT = Path(__file__).resolve().parents[2]
# When the page was built and on which source line each keyword starts: neither makes a page out of date.
NOT_CONTENT = re.compile(r'"generated": "[^"]*"|"lineno": \d+|generated="[^"]*"|lineno="\d+"')
# The HTML page for people, the libdoc spec (XML) for editors' language servers.
DOC_FILES = [".html", ".libspec"]


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    subprocess.run([str(ROOT / "scripts" / "build-docs"), str(out)], check=True, capture_output=True, timeout=120)
    return out


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_build_command_writes_each_librarys_page_with_all_its_keywords(library: str, built_docs: Path) -> None:
    page = (built_docs / f"{library}.html").read_text(encoding="utf-8")
    assert "<html" in page and str(ROOT) not in page, "a libdoc page, without the checkout's absolute paths"
    for keyword in LibraryDocumentation(library).keywords:
        assert f'"name": "{keyword.name}"' in page, f"{keyword.name} is missing from {library}.html"


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_build_command_writes_each_librarys_spec_for_editors(library: str, built_docs: Path) -> None:
    spec = (built_docs / f"{library}.libspec").read_text(encoding="utf-8")
    assert f'<keywordspec name="{library}" type="LIBRARY" format="HTML"' in spec and str(ROOT) not in spec
    for keyword in LibraryDocumentation(library).keywords:
        assert f'<kw name="{keyword.name}"' in spec, f"{keyword.name} is missing from {library}.libspec"


@pytest.mark.parametrize("library", LIBRARIES)
def test_each_library_shows_stampedes_one_version(library: str, built_docs: Path) -> None:
    assert LibraryDocumentation(library).version == stampede.__version__
    assert f'"version": "{stampede.__version__}"' in (built_docs / f"{library}.html").read_text(encoding="utf-8")
    assert f"<version>{stampede.__version__}</version>" in (built_docs / f"{library}.libspec").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize("suffix", DOC_FILES)
@pytest.mark.parametrize("library", LIBRARIES)
def test_the_committed_keyword_documentation_is_up_to_date(library: str, suffix: str, built_docs: Path) -> None:
    name = f"{library}{suffix}"
    committed = ROOT / "docs" / name
    assert committed.is_file(), f"docs/{name} is missing: run scripts/build-docs and commit docs/"
    fresh = NOT_CONTENT.sub("", (built_docs / name).read_text(encoding="utf-8"))
    assert NOT_CONTENT.sub("", committed.read_text(encoding="utf-8")) == fresh, (
        f"docs/{name} is out of date with the keywords: run scripts/build-docs and commit docs/"
    )
