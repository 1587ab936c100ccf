"""Reading isolationtester's ``.spec`` files into an interleaving spec.

The format, in its order (PostgreSQL's ``src/test/isolation/README``)::

    setup { SQL }            # any number: each runs before every permutation
    teardown { SQL }         # at most one: runs after every permutation
    session s1               # one or more
    setup { SQL }            #   optional: runs on the session before every permutation
    step s1a { SQL }         #   one or more
    teardown { SQL }         #   optional: runs on the session after every permutation
    permutation s1a s2a ...  # any number; none: every interleaving

Names are words or double-quoted text; a permutation may annotate a step with
blockers (``s1a(*)``, ``s2b(s1a)``, ``s2b(s1a notices 1)``). Every error
names the file and the line to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigurationError
from .notation import NamedStep, NotationError, Token, TokenKind, permutation_steps, tokenize
from .spec import InterleavingSpec, PermutationStep


class SpecFileError(ConfigurationError):
    """A spec file that cannot be read: the message starts with the file and line."""


class _Parser:
    def __init__(self, tokens: Sequence[Token], last_line: int) -> None:
        self.tokens = tokens
        self.i = 0
        self.last_line = last_line
        self.spec = InterleavingSpec()
        self.defined_at: dict[str, tuple[str, int]] = {}  # name: (what, line)
        self.permutations: list[list[NamedStep]] = []

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind is TokenKind.KEYWORD and token.text == word

    def take(self, kind: TokenKind, what: str) -> Token:
        token = self.peek()
        if token is None:
            raise NotationError(self.last_line, f"the file ends where {what} should be")
        if token.kind is not kind:
            raise NotationError(token.line, f"expected {what}, found {token.shown()}")
        self.i += 1
        return token

    def sql_after(self, keyword: str) -> str:
        self.i += 1
        return self.take(TokenKind.SQL, f"a SQL block {{ ... }} after '{keyword}'").text

    def refuse_conninfo(self) -> None:
        token = self.peek()
        if token is not None and token.kind is TokenKind.NAME and token.text == "conninfo":
            raise NotationError(
                token.line,
                "conninfo is not supported: every session connects to the server and schema of the run "
                "(point Stampede at another server with its PostgreSQL settings)",
            )

    def parse(self) -> InterleavingSpec:
        self.refuse_conninfo()
        while self.at_keyword("setup"):
            self.spec.setups.append(self.sql_after("setup"))
        if self.at_keyword("teardown"):
            self.spec.teardown = self.sql_after("teardown")
        if not self.at_keyword("session"):
            token = self.peek()
            if token is None:
                raise NotationError(self.last_line, "the spec defines no session: add one, e.g. session s1")
            raise NotationError(token.line, f"expected 'setup', 'teardown' or 'session', found {token.shown()}")
        while self.at_keyword("session"):
            self.session()
        while self.at_keyword("permutation"):
            self.i += 1
            steps, self.i = permutation_steps(self.tokens, self.i)
            if not steps:
                token = self.peek()
                line = token.line if token else self.last_line
                raise NotationError(line, "a permutation must name at least one step")
            self.permutations.append(steps)
        token = self.peek()
        if token is not None:
            raise NotationError(
                token.line,
                f"expected 'session' or 'permutation', found {token.shown()}"
                + (
                    " (setup and teardown blocks of the spec come before its sessions)"
                    if token.kind is TokenKind.KEYWORD
                    else ""
                ),
            )
        self.resolve_permutations()
        return self.spec

    def define(self, name: Token, what: str) -> None:
        if name.text in self.defined_at:
            other, line = self.defined_at[name.text]
            raise NotationError(
                name.line, f"{what} {name.text!r} is defined twice (the {other} at line {line}): rename one"
            )
        self.defined_at[name.text] = (what, name.line)

    def session(self) -> None:
        self.i += 1
        name = self.take(TokenKind.NAME, "a session name after 'session'")
        self.define(name, "session")
        self.refuse_conninfo()
        setup = self.sql_after("setup") if self.at_keyword("setup") else ""
        steps: list[tuple[Token, str]] = []
        while self.at_keyword("step"):
            self.i += 1
            step = self.take(TokenKind.NAME, "a step name after 'step'")
            self.define(step, "step")
            steps.append((step, self.take(TokenKind.SQL, f"the SQL block {{ ... }} of step {step.text!r}").text))
        if not steps:
            token = self.peek()
            raise NotationError(
                token.line if token else self.last_line,
                f"session {name.text!r} has no step: give it at least one (step name {{ SQL }})",
            )
        teardown = self.sql_after("teardown") if self.at_keyword("teardown") else ""
        self.spec.add_session(name.text, None, setup=setup, teardown=teardown, any_name=True)
        for step, sql in steps:
            try:
                self.spec.add_step(name.text, step.text, sql, any_name=True)
            except ConfigurationError as error:
                raise NotationError(step.line, str(error).rstrip(".")) from None

    def resolve_permutations(self) -> None:
        for steps in self.permutations:
            for step in steps:
                if step.name not in self.spec.steps:
                    raise NotationError(
                        step.line,
                        f"the permutation names step {step.name!r}, which no session defines "
                        f"(defined: {', '.join(self.spec.steps)})",
                    )
            resolved: tuple[PermutationStep, ...] = self.spec.resolve(steps)
            self.spec.permutations.append(resolved)


def parse_spec(text: str, source: str = "<spec>") -> InterleavingSpec:
    """The spec ``text`` describes; SpecFileError (``Spec file source, line N: what to fix``) when it cannot be read."""
    try:
        tokens = tokenize(text)
        return _Parser(tokens, text.count("\n") + 1).parse()
    except NotationError as error:
        raise SpecFileError(f"Spec file {source}, line {error.line}: {error.message}.") from None


def read_spec(path: Path) -> InterleavingSpec:
    """The spec in the file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"No spec file at {path}: give the path of a .spec file.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"The spec file {path} cannot be read: {error}.") from None
    return parse_spec(text, str(path))
