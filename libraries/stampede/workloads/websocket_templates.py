"""Frame templates: the JSON an agent sends, with placeholders for what differs per agent and run.

Templates are JSON values whose strings may hold placeholders: ``{user}``,
``{agent}``, ``{marker}``, ``{thread}``, ``{token}``, ``{text}``,
``{context}``, ``{request}``, ``{iteration}``, and for a resume
``{resume_token}`` and ``{last_seq}``. A string that is exactly one
placeholder takes the value itself (``"{last_seq}"`` becomes a number);
elsewhere the value is written into the text. ``{{`` and ``}}`` are literal
braces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Set
from typing import Any

from ..errors import ConfigurationError

PLACEHOLDERS = frozenset(
    {
        "user",
        "agent",
        "marker",
        "thread",
        "token",
        "text",
        "context",
        "request",
        "iteration",
        "resume_token",
        "last_seq",
    }
)
RESUME_ONLY = frozenset({"resume_token", "last_seq"})
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*)\}")


def placeholders_in(template: Any) -> set[str]:
    """The placeholder names a template uses."""
    if isinstance(template, str):
        return {match.group(1) for match in _PLACEHOLDER.finditer(template) if match.group(1)}
    if isinstance(template, Mapping):
        return set().union(*(placeholders_in(value) for value in template.values()))
    if isinstance(template, list):
        return set().union(*(placeholders_in(value) for value in template))
    return set()


def check_placeholders(template: Any, allowed: Set[str], *, where: str) -> None:
    """ConfigurationError naming the ``where`` template and the placeholders it may use, if it uses another."""
    unknown = placeholders_in(template) - allowed
    if unknown:
        raise ConfigurationError(
            f"{where} uses {', '.join(f'{{{u}}}' for u in sorted(unknown))}, "
            f"which {'is not a placeholder' if len(unknown) == 1 else 'are not placeholders'}: use "
            f"{', '.join(f'{{{p}}}' for p in sorted(allowed))} (write {{{{ and }}}} for literal braces)"
        )


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """``template`` with its placeholders filled from ``values`` (see the module documentation)."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole and whole.group(1):
            return values[whole.group(1)]
        return render_text(template, values)
    if isinstance(template, Mapping):
        return {key: render(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, values) for value in template]
    return template


def compiled(template: Any) -> Callable[[Mapping[str, Any]], Any]:
    """``template`` as a function of the values that renders it as :func:`render` does, for templates sent often."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole and whole.group(1):
            name = whole.group(1)
            return lambda values: values[name]
        if not _PLACEHOLDER.search(template):
            return lambda values: template
        return compiled_text(template)
    if isinstance(template, Mapping):
        parts = [(key, compiled(value)) for key, value in template.items()]
        return lambda values: {key: part(values) for key, part in parts}
    if isinstance(template, list):
        items = [compiled(value) for value in template]
        return lambda values: [item(values) for item in items]
    return lambda values: template


def compiled_text(text: str, convert: Callable[[Any], str] = str) -> Callable[[Mapping[str, Any]], str]:
    """``text`` as a function of the values that fills it as :func:`render_text` does, each value through ``convert``.

    The text is split once into literal pieces and placeholder names, so filling it is one join.
    """
    pieces: list[tuple[str, bool]] = []  # (literal text, False) or (placeholder name, True)
    end = 0
    for match in _PLACEHOLDER.finditer(text):
        name = match.group(1)
        pieces += [(text[end : match.start()], False), (name, True) if name else (match.group(0)[0], False)]
        end = match.end()
    pieces.append((text[end:], False))
    return lambda values: "".join([convert(values[piece]) if named else piece for piece, named in pieces])


def render_text(text: str, values: Mapping[str, Any]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]
        return str(values[name])

    return _PLACEHOLDER.sub(fill, text)
