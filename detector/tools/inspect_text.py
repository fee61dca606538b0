"""Render :func:`detector.tools.inspect.inspect_path`'s result as a readable text report."""

from __future__ import annotations

import json
from typing import Any


def _fmt_shape(shape: list[int | None] | None) -> str:
    if shape is None:
        return "?"
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def _graph_lines(g: dict[str, Any], indent: str = "") -> list[str]:
    lines = [
        f"{indent}nodes: {g['nodes']}  parameters: {g['parameters']:,}  functions: {g['functions']}"
    ]
    lines.append(f"{indent}inputs:")
    lines += [
        f"{indent}  {i['name']}  {i['dtype']}  {_fmt_shape(i['shape'])}" for i in g["inputs"]
    ] or [f"{indent}  (none)"]
    lines.append(f"{indent}outputs:")
    lines += [
        f"{indent}  {o['name']}  {o['dtype'] or '?'}  {_fmt_shape(o['shape'])}"
        for o in g["outputs"][:20]
    ] or [f"{indent}  (none)"]
    if g["variables"]:
        lines.append(f"{indent}variable ops: {len(g['variables'])}")
    ops = ", ".join(f"{k} {v}" for k, v in g["ops"].items())
    lines.append(f"{indent}ops: {ops}")
    if g["function_ops"]:
        lines.append(
            f"{indent}ops in functions: "
            + ", ".join(f"{k} {v}" for k, v in g["function_ops"].items())
        )
    return lines


def render_text(info: dict[str, Any]) -> str:
    """A human-readable report of :func:`inspect_path`'s result."""
    lines = [f"format: {info['format']}"]
    for key in ("path", "prefix", "step", "meta", "bytes", "version", "description"):
        if info.get(key) not in (None, ""):
            lines.append(f"{key}: {info[key]}")
    if "variables" in info and info["format"] in ("checkpoint", "saved_model"):
        lines.append(
            f"variables ({len(info['variables'])}, {info.get('parameters', 0):,} parameters):"
        )
        dtypes = info.get("dtypes", {})
        lines += [
            f"  {k}  {_fmt_shape(v)}  {dtypes.get(k, '')}".rstrip()
            for k, v in info["variables"].items()
        ]
    if info.get("state_file"):
        st = info["state_file"]
        lines.append(f"state file: {st['path']}")
        for e in st["all"]:
            flag = " (latest)" if st["latest"] and e["path"] == st["latest"]["path"] else ""
            bad = "" if e["exists"] else " MISSING"
            bad += " POINTS ELSEWHERE" if e["points_elsewhere"] else ""
            lines.append(f"  {e['path']}  step {e['step']}{flag}{bad}")
    if info["format"] == "tflite":
        lines.append("inputs:")
        lines += [f"  {t['name']}  {t['dtype']}  {_fmt_shape(t['shape'])}" for t in info["inputs"]]
        lines.append("outputs:")
        lines += [f"  {t['name']}  {t['dtype']}  {_fmt_shape(t['shape'])}" for t in info["outputs"]]
        lines.append(f"parameters: {info['parameters']:,}  tensors: {info['tensors']}")
        lines.append("ops: " + ", ".join(f"{k} {v}" for k, v in info["ops"].items()))
    for meta in info.get("meta_graphs", [info] if "meta_info" in info else []):
        mi = meta["meta_info"]
        lines.append(
            f"meta graph: tags {mi['tags'] or '-'}, TF {mi['tensorflow_version'] or '?'}"
            f", {len(mi['ops_used'])} ops used"
        )
        if meta.get("saver"):
            s = meta["saver"]
            lines.append(
                f"  saver: restore op {s['restore_op']}, save {s['save_tensor']}, "
                f"max_to_keep {s['max_to_keep']}"
            )
        if meta["collections"]:
            lines.append(
                "  collections: "
                + ", ".join(f"{k} ({v['count']})" for k, v in meta["collections"].items())
            )
        for key, sig in meta.get("signatures", {}).items():
            lines.append(f"  signature {key!r} ({sig['method']}):")
            lines += [
                f"    in  {k}: {v['name']} {v['dtype']} {_fmt_shape(v['shape'])}"
                for k, v in sig["inputs"].items()
            ]
            lines += [
                f"    out {k}: {v['name']} {v['dtype']} {_fmt_shape(v['shape'])}"
                for k, v in sig["outputs"].items()
            ]
        lines.append(f"  safety: {meta['safety']}")
        lines += _graph_lines(meta["graph"], "  ")
    if "graph" in info and "meta_info" not in info:
        lines.append(f"safety: {info['safety']}")
        lines += _graph_lines(info["graph"])
    if "tensor" in info:
        t = info["tensor"]
        lines.append(f"tensor {t['name']}  {t['dtype']}  {_fmt_shape(t['shape'])}")
        shown = t["values"] if "values" in t else {k: t[k] for k in ("min", "max", "mean", "first")}
        lines.append("  " + json.dumps(shown))
    return "\n".join(lines)
