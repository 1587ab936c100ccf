"""The words of isolationtester's spec format: names, quoted names, SQL blocks, and a permutation's step list.

The format's own scanner (PostgreSQL's ``src/test/isolation/specscanner.l``)
reads ``#`` to the end of a line as a comment; keywords (``setup``,
``teardown``, ``session``, ``step``, ``permutation``, ``notices``); names
(letters, digits, ``_`` and ``$``, not starting with a digit) or any text in
double quotes (``""`` for a quote); numbers; ``( ) , *``; and SQL blocks in
braces, which run up to the first ``}`` with the spaces (not newlines) just
inside the braces trimmed. A permutation names steps, each optionally
followed by blocker annotations in parentheses: ``s1a(*)``, ``s2b(s1a)``,
``s2b(s1a notices 1)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

KEYWORDS = frozenset({"setup", "teardown", "session", "step", "permutation", "notices"})
_NAME = re.compile(r"[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*")
_NUMBER = re.compile(r"[0-9]+")
_SPACE = " \t\r\f"


class TokenKind(StrEnum):
    KEYWORD = "keyword"
    NAME = "name"
    NUMBER = "number"
    PUNCTUATION = "punctuation"
    SQL = "SQL block"


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    line: int

    def shown(self) -> str:
        if self.kind is TokenKind.SQL:
            return "a SQL block"
        if self.kind is TokenKind.KEYWORD:
            return f"the keyword {self.text!r}"
        return repr(self.text)


class NotationError(ValueError):
    """A spec or permutation that cannot be read, with the line it was found on."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def tokenize(text: str, first_line: int = 1) -> list[Token]:
    """The tokens of ``text``; NotationError (with its line) for what the format does not allow."""
    tokens: list[Token] = []
    line, i = first_line, 0
    while i < len(text):
        char = text[i]
        if char == "\n":
            line, i = line + 1, i + 1
        elif char in _SPACE:
            i += 1
        elif char == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif char == '"':
            i = _quoted(text, i, line, tokens)
        elif char == "{":
            i, line = _sql_block(text, i, line, tokens)
        elif char in "(),*":
            tokens.append(Token(TokenKind.PUNCTUATION, char, line))
            i += 1
        elif match := _NAME.match(text, i):
            word = match.group()
            tokens.append(Token(TokenKind.KEYWORD if word in KEYWORDS else TokenKind.NAME, word, line))
            i = match.end()
        elif match := _NUMBER.match(text, i):
            tokens.append(Token(TokenKind.NUMBER, match.group(), line))
            i = match.end()
        else:
            raise NotationError(line, f"unexpected character {char!r}")
    return tokens


def _quoted(text: str, start: int, line: int, tokens: list[Token]) -> int:
    name, i = [], start + 1
    while True:
        if i >= len(text):
            raise NotationError(line, 'the quoted name that starts here is never closed with "')
        if text[i] == "\n":
            raise NotationError(line, 'a quoted name must end on the line it starts (close it with ")')
        if text.startswith('""', i):
            name.append('"')
            i += 2
        elif text[i] == '"':
            tokens.append(Token(TokenKind.NAME, "".join(name), line))
            return i + 1
        else:
            name.append(text[i])
            i += 1


def _sql_block(text: str, start: int, line: int, tokens: list[Token]) -> tuple[int, int]:
    end = text.find("}", start)
    if end < 0:
        raise NotationError(line, "the SQL block opened here with { is never closed with }")
    inner = text.find("{", start + 1, end)
    if inner >= 0:
        raise NotationError(
            line,
            f"the SQL block opened here is still open when another {{ comes at line "
            f"{line + text.count(chr(10), start, inner)}: close it with }} (a block ends at its first }})",
        )
    sql = text[start + 1 : end].lstrip(_SPACE).rstrip(_SPACE)
    tokens.append(Token(TokenKind.SQL, sql, line))
    return end + 1, line + text.count("\n", start, end)


class BlockerKind(StrEnum):
    ONCE = "*"
    STEP = "step"
    NOTICES = "notices"


@dataclass(frozen=True)
class Blocker:
    """Why a step is not reported complete yet: once at first (``*``), until a step ends, until N notices."""

    kind: BlockerKind
    step: str = ""
    notices: int = 0

    def __str__(self) -> str:
        if self.kind is BlockerKind.ONCE:
            return "*"
        return f"{self.step} notices {self.notices}" if self.kind is BlockerKind.NOTICES else self.step


@dataclass(frozen=True)
class NamedStep:
    """A step as a permutation names it, with its blocker annotations and the line it is on."""

    name: str
    blockers: tuple[Blocker, ...] = ()
    line: int = 0

    def __str__(self) -> str:
        shown = self.name if _NAME.fullmatch(self.name) and self.name not in KEYWORDS else quote(self.name)
        return f"{shown}({', '.join(map(str, self.blockers))})" if self.blockers else shown


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def permutation_steps(tokens: Sequence[Token], start: int) -> tuple[list[NamedStep], int]:
    """Read the step list of a permutation from ``tokens[start:]``; returns the steps and where the list ended."""
    steps, i = [], start
    while i < len(tokens) and tokens[i].kind is TokenKind.NAME:
        name = tokens[i]
        i += 1
        blockers: list[Blocker] = []
        if i < len(tokens) and tokens[i].text == "(" and tokens[i].kind is TokenKind.PUNCTUATION:
            i = _blockers(tokens, i + 1, name, blockers)
        steps.append(NamedStep(name.text, tuple(blockers), name.line))
    return steps, i


def _blockers(tokens: Sequence[Token], i: int, step: Token, blockers: list[Blocker]) -> int:
    while True:
        token = _next(tokens, i, step, "a blocker: *, a step name, or a step name followed by 'notices N'")
        if token.text == "*" and token.kind is TokenKind.PUNCTUATION:
            blockers.append(Blocker(BlockerKind.ONCE))
            i += 1
        elif token.kind is TokenKind.NAME:
            i += 1
            if i < len(tokens) and tokens[i].kind is TokenKind.KEYWORD and tokens[i].text == "notices":
                count = _next(tokens, i + 1, step, "a number of notices after 'notices'")
                if count.kind is not TokenKind.NUMBER:
                    raise NotationError(
                        count.line, f"expected a number of notices after 'notices', found {count.shown()}"
                    )
                blockers.append(Blocker(BlockerKind.NOTICES, token.text, int(count.text)))
                i += 2
            else:
                blockers.append(Blocker(BlockerKind.STEP, token.text))
        else:
            raise NotationError(
                token.line, f"expected a blocker of step {step.text!r} (*, a step name), found {token.shown()}"
            )
        close = _next(tokens, i, step, "',' or ')' after a blocker")
        if close.kind is TokenKind.PUNCTUATION and close.text == ")":
            return i + 1
        if not (close.kind is TokenKind.PUNCTUATION and close.text == ","):
            raise NotationError(
                close.line, f"expected ',' or ')' in the blockers of step {step.text!r}, found {close.shown()}"
            )
        i += 1


def _next(tokens: Sequence[Token], i: int, step: Token, expected: str) -> Token:
    if i >= len(tokens):
        raise NotationError(step.line, f"the blockers of step {step.text!r} end before ')': expected {expected}")
    return tokens[i]
