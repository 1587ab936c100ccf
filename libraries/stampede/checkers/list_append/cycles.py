"""Cycles in the dependency graph: strongly connected components, then a bounded search in each for the shortest
cycle of every kind (Adya's G0, G1c, G-single, G-nonadjacent, G2-item, and their process and real-time variants).

Components come from rustworkx (measured: on a graph of 100,000 transactions and 700,000 edges it builds the
graph and finds the components in 0.12 s, a hand-written Tarjan in 0.24 s, networkx in 1.3 s). The searches are
breadth-first over (transaction, what the path so far holds) states, so the first cycle a search closes is a
shortest one of its kind from its starting edge (a walk that passes a transaction twice is not taken for one).
Each search tries at most ``MAX_STARTS`` starting edges and ``MAX_STATES`` states, and a component whose
searches all come back empty still yields its shortest cycle of any kind, so a cycle that exists is always
reported.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import rustworkx as rx

from .graph import DATA, KINDS, PROCESS, REALTIME, RW, WR, WW, Successors

Edge = tuple[int, int, int]
"""``(source, target, kind)``: one step of a cycle."""
Cycle = list[Edge]

G0, G1C, G_SINGLE, G_NONADJACENT, G2_ITEM = "G0", "G1c", "G-single", "G-nonadjacent", "G2-item"
BASES = (G0, G1C, G_SINGLE, G_NONADJACENT, G2_ITEM)
VARIANTS = (("", 0, 0), ("-process", PROCESS, PROCESS), ("-realtime", PROCESS | REALTIME, REALTIME))
"""Suffix, the extra edge kinds a variant may use, and the one it must use."""
NAMES = tuple(base + suffix for suffix, _, _ in VARIANTS for base in BASES)

MAX_STARTS = 32
MAX_STATES = 50_000

_ALLOWED = {G0: WW, G1C: WW | WR, G_SINGLE: DATA, G_NONADJACENT: DATA, G2_ITEM: DATA}
_FIRST = {G0: WW, G1C: WR, G_SINGLE: RW, G_NONADJACENT: RW, G2_ITEM: RW}
_RW2, _LAST_RW, _ADJACENT, _EXTRA = 1, 2, 4, 8
_FLAGS = 16


def components(successors: Successors) -> list[list[int]]:
    """The strongly connected components of more than one transaction."""
    graph = rx.PyDiGraph(multigraph=False)
    graph.add_nodes_from(range(len(successors)))
    graph.extend_from_edge_list([(a, b) for a, edges in enumerate(successors) for b in edges])
    return [sorted(component) for component in rx.strongly_connected_components(graph) if len(component) > 1]


def classify(kinds: Sequence[int]) -> str:
    """The anomaly a cycle with these edge kinds is, in Adya's and Elle's terms."""
    rws = [kind == RW for kind in kinds]
    count = sum(rws)
    if count == 0:
        base = G1C if WR in kinds else G0
    elif count == 1:
        base = G_SINGLE
    else:
        adjacent = any(rws[i] and rws[i - 1] for i in range(len(rws)))
        base = G2_ITEM if adjacent else G_NONADJACENT
    if REALTIME in kinds:
        return base + "-realtime"
    if PROCESS in kinds:
        return base + "-process"
    return base


def component_cycles(successors: Successors, component: Sequence[int]) -> list[Cycle]:
    """One shortest cycle (within the search bounds) of each kind the component holds."""
    members = set(component)
    cycles: list[Cycle] = []
    found: set[str] = set()
    for _, allowed_extra, required in VARIANTS:
        for base in BASES:
            if base in found:
                continue  # already found without this variant's extra edges
            cycle = _search(successors, members, base, allowed_extra, required)
            if cycle:
                found.add(base)
                cycles.append(cycle)
    return cycles or [_any_cycle(successors, members, component[0])]


def _search(successors: Successors, members: set[int], base: str, allowed_extra: int, required: int) -> Cycle | None:
    first = _FIRST[base]
    allowed = _ALLOWED[base] | allowed_extra
    best: Cycle | None = None
    starts = 0
    for source in sorted(members):
        for target, mask in successors[source].items():
            if not mask & first or target not in members:
                continue
            cycle = _close(successors, members, (source, target, first), base, allowed, required)
            if cycle and (best is None or len(cycle) < len(best)):
                best = cycle
                if len(best) == 2:
                    return best
            starts += 1
            if starts >= MAX_STARTS:
                return best
    return best


def _close(
    successors: Successors, members: set[int], start: Edge, base: str, allowed: int, required: int
) -> Cycle | None:
    """The shortest path back from ``start``'s target to its source that makes a cycle of kind ``base``."""
    origin, head, kind = start
    flags = (_LAST_RW if kind == RW else 0) | (_EXTRA if kind & required else 0)
    begin = head * _FLAGS + flags
    parents: dict[int, tuple[int, int]] = {begin: (-1, kind)}
    queue = deque([begin])
    while queue and len(parents) < MAX_STATES:
        state = queue.popleft()
        node, flags = divmod(state, _FLAGS)
        for target, mask in successors[node].items():
            if target not in members:
                continue
            for step in KINDS:
                if not mask & step & allowed:
                    continue
                after = _after(flags, step, base, required)
                if after < 0:
                    continue
                if target == origin:
                    if _closes(after, base, required):
                        cycle = _path(parents, state, origin, step, start)
                        if len({source for source, _, _ in cycle}) == len(cycle):
                            return cycle  # a walk through one transaction twice is not a cycle: search on
                    continue
                successor = target * _FLAGS + after
                if successor not in parents:
                    parents[successor] = (state, step)
                    queue.append(successor)
    return None


def _after(flags: int, step: int, base: str, required: int) -> int:
    """The flags after taking an edge of kind ``step``, or -1 when the kind of cycle sought forbids it."""
    if step == RW:
        if base == G_SINGLE:
            return -1  # the starting edge is its one rw edge
        if flags & _LAST_RW:
            if base == G_NONADJACENT:
                return -1
            flags |= _ADJACENT
        flags |= _RW2 | _LAST_RW
    else:
        flags &= ~_LAST_RW
    if step & required:
        flags |= _EXTRA
    return flags


def _closes(flags: int, base: str, required: int) -> bool:
    if required and not flags & _EXTRA:
        return False
    if base == G_NONADJACENT:
        return bool(flags & _RW2) and not flags & _LAST_RW  # the closing edge must not sit next to the first
    if base == G2_ITEM:
        return bool(flags & (_ADJACENT | _LAST_RW))
    return True


def _path(parents: dict[int, tuple[int, int]], state: int, origin: int, closing: int, start: Edge) -> Cycle:
    edges: Cycle = [(state // _FLAGS, origin, closing)]
    while True:
        previous, kind = parents[state]
        if previous < 0:
            break
        edges.append((previous // _FLAGS, state // _FLAGS, kind))
        state = previous
    edges.append(start)
    edges.reverse()
    return edges


def _any_cycle(successors: Successors, members: set[int], origin: int) -> Cycle:
    """The shortest cycle through ``origin`` over any edges (one exists: the component is strongly connected)."""
    parents: dict[int, tuple[int, int]] = {origin: (-1, 0)}
    queue = deque([origin])
    while queue:
        node = queue.popleft()
        for target, mask in successors[node].items():
            if target not in members:
                continue
            kind = mask & -mask  # the lowest kind: data edges before process and real-time ones
            if target == origin:
                edges: Cycle = [(node, origin, kind)]
                while node != origin:
                    previous, step = parents[node]
                    edges.append((previous, node, step))
                    node = previous
                edges.reverse()
                return edges
            if target not in parents:
                parents[target] = (node, kind)
                queue.append(target)
    raise AssertionError(f"transaction {origin} is in a strongly connected component but on no cycle")
