"""``run.ray_placement``: which Ray custom resource a live source's worker needs (its node)."""

from __future__ import annotations

from typing import Any

from detector.events.spec import bad_value, number_value

Placement = tuple[tuple[str, str, float], ...]

_WANT = "source=resource pairs, e.g. cam1=edge_a,cam2=edge_b:0.5 (a mapping in YAML)"


def parse_placement(key: str, value: Any, where: str) -> Placement:
    """``{source name: resource}`` or ``{source name: "resource:amount"}`` (amount 1 unless
    given); on the command line ``cam1=edge_a,cam2=edge_b:0.5``. Returns
    ``((source, resource, amount), ...)``."""
    if value is None:
        return ()
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, rest = part.partition("=")
            if not sep or not name.strip():
                raise bad_value(where, key, _WANT, value)
            pairs[name.strip()] = rest.strip()
        value = pairs
    if isinstance(value, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 3 for p in value
    ):  # already parsed (a config written back)
        value = {str(p[0]): f"{p[1]}:{p[2]}" for p in value}
    if not isinstance(value, dict):
        raise bad_value(where, key, _WANT, value)
    out = []
    for name, wanted in value.items():
        resource, _, amount = str(wanted).partition(":")
        if not resource.strip() or resource.strip() in ("CPU", "GPU", "memory"):
            raise bad_value(where, key, _WANT + "; a custom resource, not CPU/GPU", value)
        try:
            n = float(amount) if amount.strip() else 1.0
        except ValueError:
            raise bad_value(where, key, _WANT, value) from None
        out.append((str(name), resource.strip(), number_value(where, key, n, lo=0.0)))
    return tuple(out)
