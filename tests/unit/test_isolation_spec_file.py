"""isolationtester's spec format without a server: what a spec file says, bad specs by line, the transcript's form."""

from __future__ import annotations

from pathlib import Path

import pytest

from stampede.interleavings.notation import BlockerKind
from stampede.interleavings.outcome import (
    EntryKind,
    Notice,
    PermutationRun,
    ResultSet,
    SessionTransaction,
    StepOutcome,
    TimelineEntry,
)
from stampede.interleavings.spec import Session, Step
from stampede.interleavings.spec_file import SpecFileError, parse_spec
from stampede.interleavings.transcript import SpecRun, compare, result_table

SPEC = """# a comment
setup { CREATE TABLE t (id int); }
setup
{
  INSERT INTO t VALUES (1);
}
teardown { DROP TABLE t; }

session s1
setup { BEGIN ISOLATION LEVEL SERIALIZABLE; }
step s1a { SELECT * FROM t; }
step "s1 b" { UPDATE t SET id = 2;
  UPDATE t SET id = 3; }
teardown { COMMIT; }

session "s2"
step s2a	{ SELECT 1; }   # trailing comment

permutation s1a(*) "s1 b"(s2a, s2a notices 2) s2a s1a
permutation s2a
"""


def test_a_spec_file_reads_as_its_blocks_sessions_steps_and_permutations() -> None:
    spec = parse_spec(SPEC)
    assert spec.setups == ["CREATE TABLE t (id int);", "\n  INSERT INTO t VALUES (1);\n"]
    assert spec.teardown == "DROP TABLE t;"
    s1 = spec.sessions["s1"]
    assert (s1.isolation, s1.setup, s1.teardown) == (None, "BEGIN ISOLATION LEVEL SERIALIZABLE;", "COMMIT;")
    assert spec.steps["s1 b"].sql == "UPDATE t SET id = 2;\n  UPDATE t SET id = 3;"
    first, second = spec.permutations
    assert [place.label for place in first] == ["s1a", "s1 b", "s2a", "s1a#2"]
    assert [b.kind for b in first[0].blockers] == [BlockerKind.ONCE]
    assert [(b.kind, b.step, b.notices) for b in first[1].blockers] == [
        (BlockerKind.STEP, "s2a", 0),
        (BlockerKind.NOTICES, "s2a", 2),
    ]
    assert [place.label for place in second] == ["s2a"]


def test_a_spec_without_permutations_runs_every_interleaving() -> None:
    spec = parse_spec("session a step a1 { SELECT 1; } step a2 { SELECT 2; } session b step b1 { SELECT 3; }")
    assert spec.permutations == []
    assert [[p.label for p in steps] for steps in spec.every_permutation()] == [
        ["a1", "a2", "b1"],
        ["a1", "b1", "a2"],
        ["b1", "a1", "a2"],
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "session s1\nstep a { SELECT 1; }\n\npermutation a b\n",
            r"^Spec file x\.spec, line 4: the permutation names step 'b', which no session defines \(defined: a\)\.$",
        ),
        (
            "setup { SELECT 1;\n\nsession s1 step a { SELECT 1; }\n",
            r"^Spec file x\.spec, line 1: the SQL block opened here is still open when another \{ comes at line 3",
        ),
        (
            "session s1\nstep a { SELECT 1; }\nstep b { SELECT 2;\n",
            r"^Spec file x\.spec, line 3: the SQL block opened here with \{ is never closed with \}\.$",
        ),
        (
            "session s1\nstep a { SELECT 1; }\nsession s2\nstep a { SELECT 2; }\n",
            r"^Spec file x\.spec, line 4: step 'a' is defined twice \(the step at line 2\): rename one\.$",
        ),
        (
            "session s1\nstep a { SELECT 1; }\nsession s1\nstep b { SELECT 2; }\n",
            r"^Spec file x\.spec, line 3: session 's1' is defined twice \(the session at line 1\): rename one\.$",
        ),
        (
            "session s1\nstep s1 { SELECT 1; }\n",
            r"^Spec file x\.spec, line 2: step 's1' is defined twice \(the session at line 1\)",
        ),
        (
            'session "s1\nstep a { SELECT 1; }\n',
            r"^Spec file x\.spec, line 1: a quoted name must end on the line it starts",
        ),
        ("session s1\nstep a { SELECT 1; }\npermutation a(\n", r"line 3: the blockers of step 'a' end before '\)'"),
        ("session s1\nstep a { SELECT 1; }\npermutation a(b)\n", r"line 3: step 'a' waits for step 'b', which this"),
        ("session s1\n\nsession s2 step b { SELECT 1; }\n", r"line 3: session 's1' has no step"),
        ("session s1 step a { SELECT 1; }\nsetup { SELECT 2; }\n", r"line 2: expected 'session' or 'permutation'"),
        ("session s1 step a { SELECT 1; } step b { }\n", r"line 1: .*Step 'b' of session s1 holds no SQL statement"),
        ("step a { SELECT 1; }\n", r"line 1: expected 'setup', 'teardown' or 'session', found the keyword 'step'"),
        ("session s1 step a { SELECT 1; } ; \n", r"line 1: unexpected character ';'"),
        ("# nothing\n", r"line 2: the spec defines no session"),
        ('session s1 conninfo "x"\nstep a { SELECT 1; }\n', r"line 1: conninfo is not supported"),
    ],
)
def test_a_bad_spec_is_refused_with_the_line_to_fix(text: str, message: str) -> None:
    with pytest.raises(SpecFileError, match=message):
        parse_spec(text, "x.spec")


def test_result_tables_are_aligned_as_pqprint_aligns_them() -> None:
    result = ResultSet(("id", "name", "n"), (("1", "a", None), ("1000", "bbbbb", None)), "SELECT 2")
    assert result_table(result) == [
        "  id|name |n",
        "----+-----+-",
        "   1|a    | ",
        "1000|bbbbb| ",
        "(2 rows)",
        "",
    ]
    assert result_table(ResultSet(("x",), (), "SELECT 0")) == ["x", "-", "(0 rows)", ""]
    assert result_table(ResultSet(("v",), (("1e5",), ("-2.5",)), "SELECT 2"))[2:4] == [" 1e5", "-2.5"]
    assert result_table(ResultSet(("v",), (("E1",),), "SELECT 1"))[0] == "v "


def _run() -> PermutationRun:
    session = Session("s1", None)
    update = StepOutcome(Step("s1u", "s1", "UPDATE t SET v = 1;"), results=[ResultSet((), (), "UPDATE 1", False)])
    read = StepOutcome(Step("s1r", "s1", "SELECT v FROM t;"), results=[ResultSet(("v",), (("1",),), "SELECT 1")])
    failed = StepOutcome(Step("s1f", "s1", "SELECT 1/0;"), error="division by zero", sqlstate="22012")
    notice = Notice("NOTICE", "hello", "NOTICE:  hello\n")
    timeline = [
        TimelineEntry("s1", "s1u", "", EntryKind.BLOCKED, update, (notice,)),
        TimelineEntry("s1", "s1u", "", EntryKind.RESUMED, update, after_wait=True),
        TimelineEntry("s1", "s1r", "", EntryKind.COMPLETED, read),
        TimelineEntry("s1", "s1f", "", EntryKind.FAILED, failed),
        TimelineEntry("s1", "", "", EntryKind.ROLLED_BACK),
    ]
    return PermutationRun(
        {"s1": session}, ("s1u", "s1r", "s1f"), {}, timeline, {"s1": SessionTransaction(session)}, "18"
    )


EXPECTED = """Parsed test spec with 1 session

starting permutation: s1u s1r s1f
s1: NOTICE:  hello
step s1u: UPDATE t SET v = 1; <waiting ...>
step s1u: <... completed>
step s1r: SELECT v FROM t;
v
-
1
(1 row)

step s1f: SELECT 1/0;
ERROR:  division by zero
"""


def test_a_transcript_reads_as_isolationtester_writes_it(tmp_path: Path) -> None:
    run = SpecRun(tmp_path / "x.spec", 1, (_run(),))
    assert run.text == EXPECTED
    expected = tmp_path / "x.out"
    expected.write_text(EXPECTED.replace("\n", "\r\n") + "\n\n")
    assert compare(run.text, expected).matched == expected


def test_a_mismatch_shows_a_diff_and_variants_are_tried(tmp_path: Path) -> None:
    run = SpecRun(tmp_path / "x.spec", 1, (_run(),))
    expected = tmp_path / "x.out"
    expected.write_text(EXPECTED.replace("(1 row)", "(2 rows)"))
    comparison = compare(run.text, expected)
    assert not comparison.ok
    assert "-(2 rows)\n+(1 row)\n" in comparison.diff
    variant = tmp_path / "x_1.out"
    variant.write_text(EXPECTED)
    assert compare(run.text, expected).matched == variant
