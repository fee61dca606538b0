"""Refuse function libraries that would crash TensorFlow's importer: recursion, deep nesting.

TensorFlow's ``import_graph_def`` follows function calls recursively in C++: a function
library that calls itself (directly or through others) or nests calls thousands deep ends
the process with SIGSEGV, no exception. Every walk here is iterative, so a hostile file
costs time linear in its size and never recursion depth; the check runs before anything
is imported, beside the op allowlist (:mod:`detector.model.safety`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from detector.errors import UnsafeGraphError

#: Deepest chain of nested function calls accepted (real models nest a few dozen at most;
#: TensorFlow's importer crashed here on 20,000).
MAX_CALL_DEPTH = 256

_HINT = (
    "TensorFlow itself cannot import this graph (its importer would crash the process); "
    "the file is damaged or was made to attack the reader: do not load it anywhere"
)


def called_functions(node: Any, library: dict[str, Any] | set[str]) -> Iterator[str]:
    """Library functions a node calls: every ``func`` / ``list(func)`` attr, and its op."""
    if node.op in library:
        yield node.op
    for value in node.attr.values():
        if value.HasField("func"):
            if value.func.name in library:
                yield value.func.name
        elif value.HasField("list"):
            yield from (f.name for f in value.list.func if f.name in library)


def _call_graph(graph_def: Any) -> dict[str, list[str]]:
    """Function name → the library functions its body calls (each once)."""
    library = {f.signature.name: f for f in graph_def.library.function}
    return {
        name: sorted({c for n in fdef.node_def for c in called_functions(n, library)})
        for name, fdef in library.items()
    }


def _cycle(calls: dict[str, list[str]]) -> list[str] | None:
    """One call cycle (``[a, b, a]``) of the call graph, or None; iterative depth-first."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    for root in sorted(calls):
        if root in state:
            continue
        path: list[str] = [root]
        state[root] = 1
        iters: list[Iterator[str]] = [iter(calls[root])]
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(calls[nxt]))
    return None


def _depths(calls: dict[str, list[str]]) -> dict[str, int]:
    """Each function's call depth (1: calls nothing); the graph must be acyclic."""
    depth: dict[str, int] = {}
    for root in sorted(calls):
        stack = [(root, False)]
        while stack:
            name, expanded = stack.pop()
            if name in depth:
                continue
            if expanded:
                depth[name] = 1 + max((depth[c] for c in calls[name]), default=0)
                continue
            stack.append((name, True))
            stack.extend((c, False) for c in calls[name] if c not in depth)
    return depth


def check_structure(graph_def: Any, *, what: str) -> None:
    """Refuse a function library with a call cycle or calls nested deeper than
    :data:`MAX_CALL_DEPTH`. Not waived by ``allow_unsafe_ops``: no one can load it.

    Raises:
        UnsafeGraphError: Naming the cycle, or the depth and the deepest function.
    """
    calls = _call_graph(graph_def)
    if not calls:
        return
    cycle = _cycle(calls)
    if cycle is not None:
        chain = " -> ".join(cycle[:12]) + (" -> ..." if len(cycle) > 12 else "")
        raise UnsafeGraphError(
            f"refusing graph '{what}': its function library is recursive ({chain}); "
            "TensorFlow graphs cannot call a function from itself",
            hint=_HINT,
        )
    depths = _depths(calls)
    deepest = max(depths, key=lambda n: (depths[n], n))
    if depths[deepest] > MAX_CALL_DEPTH:
        raise UnsafeGraphError(
            f"refusing graph '{what}': function calls nest {depths[deepest]} deep (from "
            f"'{deepest}'); at most {MAX_CALL_DEPTH} are accepted",
            hint=_HINT,
        )
