"""Consistency models and the anomalies each one rules out (Adya 1999; Cerone et al. 2015; Kingsbury & Alvaro 2020).

Each model forbids the anomalies of the models below it and its own. On list-append histories every object is
an item (there are no predicate reads), so Adya's repeatable read (PL-2.99) and serializable (PL-3) forbid the same
cycles here. PostgreSQL's ``REPEATABLE READ`` is snapshot isolation, not Adya's repeatable read: it allows write
skew (G2-item).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ...errors import ConfigurationError
from .cycles import BASES, G0, G1C, G2_ITEM, G_NONADJACENT, G_SINGLE
from .single import DUPLICATES, G1A, G1B, GARBAGE, INCOMPATIBLE, INTERNAL, LOST_UPDATE


@dataclass(frozen=True)
class Model:
    name: str
    forbids: frozenset[str]
    source: str


def _variants(bases: Iterable[str], *suffixes: str) -> set[str]:
    return {base + suffix for base in bases for suffix in suffixes}


_LIST_SEMANTICS = {INTERNAL, DUPLICATES, INCOMPATIBLE, GARBAGE}
_UNCOMMITTED = _LIST_SEMANTICS | {G0}
_COMMITTED = _UNCOMMITTED | {G1A, G1B, G1C}
_CURSOR = _COMMITTED | {LOST_UPDATE}
_SNAPSHOT = _CURSOR | {G_SINGLE, G_NONADJACENT}
_SERIAL = _SNAPSHOT | {G2_ITEM}
_SI_CYCLES = (G0, G1C, G_SINGLE, G_NONADJACENT)

MODELS = (
    Model("read uncommitted", frozenset(_UNCOMMITTED), "Adya PL-1: no write cycles (G0)"),
    Model("read committed", frozenset(_COMMITTED), "Adya PL-2: no G1 (aborted, intermediate reads, G1c)"),
    Model("cursor stability", frozenset(_CURSOR), "Adya PL-CS: no lost update of one item (G-cursor)"),
    Model("repeatable read", frozenset(_SERIAL), "Adya PL-2.99: no item anti-dependency cycles (G2-item)"),
    Model("snapshot isolation", frozenset(_SNAPSHOT), "Adya PL-SI / Cerone: no G-single, no G-nonadjacent"),
    Model("serializable", frozenset(_SERIAL), "Adya PL-3: no dependency cycle at all"),
    Model(
        "strong session snapshot isolation",
        frozenset(_SNAPSHOT | _variants(_SI_CYCLES, "-process")),
        "snapshot isolation, each agent's transactions in its order",
    ),
    Model(
        "strong snapshot isolation",
        frozenset(_SNAPSHOT | _variants(_SI_CYCLES, "-process", "-realtime")),
        "snapshot isolation in real-time order",
    ),
    Model(
        "strong session serializable",
        frozenset(_SERIAL | _variants(BASES, "-process")),
        "serializable, each agent's transactions in its order",
    ),
    Model(
        "strict serializable",
        frozenset(_SERIAL | _variants(BASES, "-process", "-realtime")),
        "serializable in real-time order (linearizable transactions)",
    ),
)
_BY_NAME = {model.name: model for model in MODELS}


def model(name: str) -> Model:
    """The model called ``name`` (case, hyphens and underscores ignored); ConfigurationError lists the others."""
    wanted = " ".join(name.replace("-", " ").replace("_", " ").lower().split())
    if wanted not in _BY_NAME:
        raise ConfigurationError(
            f"Unknown consistency model {name!r}; the models a list-append history is judged against are: "
            f"{', '.join(_BY_NAME)}."
        )
    return _BY_NAME[wanted]


def ruled_out(anomalies: Iterable[str]) -> list[str]:
    """The models that forbid any of ``anomalies``, weakest first."""
    found = set(anomalies)
    return [m.name for m in MODELS if m.forbids & found]


def markdown_table(anomalies: Iterable[str]) -> str:
    """The model table as docs/list_append.md shows it: anomalies as rows, models as columns, ✗ where forbidden."""
    lines = [
        "| anomaly | " + " | ".join(m.name for m in MODELS) + " |",
        "|---|" + "---|" * len(MODELS),
    ]
    lines.extend(
        f"| {name} | " + " | ".join("✗" if name in m.forbids else "" for m in MODELS) + " |" for name in anomalies
    )
    return "\n".join(lines) + "\n"
