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
    lines.append(f"{indent}ops: {_histogram(g['ops'])}")
    if g["function_ops"]:
        lines.append(f"{indent}ops in functions: {_histogram(g['function_ops'])}")
    return lines


def _histogram(counts: dict[str, int], shown: int = 40) -> str:
    """``Conv2D 55, BiasAdd 72, ...``: the most common op kinds, then how many more
    (``--json`` has them all)."""
    text = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:shown])
    more = len(counts) - shown
    return text + (f", ... and {more} more op kinds (--json lists all)" if more > 0 else "")


def _spec(value: Any) -> str:
    """A decoded function spec, compact: ``x: float32 [?,3]`` for each TensorSpec."""
    if isinstance(value, dict) and set(value) == {"name", "dtype", "shape"}:
        name = f"{value['name']}: " if value["name"] else ""
        return f"{name}{value['dtype']} {_fmt_shape(value['shape'])}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_spec(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "(" + ", ".join(_spec(v) for v in value) + ")"
    return str(value)


def _node_lines(nodes: list[dict[str, Any]] | None, indent: str) -> list[str]:
    if nodes is None:
        return []
    lines = [f"{indent}nodes listed: {len(nodes)}"]
    for n in nodes:
        where = f"  [in {n['function']}]" if n.get("function") else ""
        outs = ", ".join(
            f"{o['name']} {o['dtype'] or '?'} {_fmt_shape(o['shape'])}" for o in n["outputs"]
        )
        ins = ", ".join(n["inputs"])
        lines.append(f"{indent}  {n['name']}  {n['op']}{where}  <- {ins or '-'}  -> {outs or '-'}")
    return lines


def _keras_lines(info: dict[str, Any]) -> list[str]:
    """A Keras file's model class, layers, inputs and outputs, and its safety verdict."""
    if info["format"] not in ("keras", "keras_weights"):
        return []
    lines = [f"{k}: {info[k]}" for k in ("model_class", "keras_version", "layout") if info.get(k)]
    if info.get("layers"):
        lines.append(f"layers ({len(info['layers'])}):")
        for layer in info["layers"]:
            extra = ", ".join(
                f"{k} {v}" for k, v in layer.items() if k not in ("index", "name", "class")
            )
            lines.append(f"  {layer['name']}  {layer['class']}" + (f"  ({extra})" if extra else ""))
    for key in ("inputs", "outputs"):
        if key in info:
            lines.append(f"{key}:")
            lines += [f"  {t['name']}  {t['dtype']}  {_fmt_shape(t['shape'])}" for t in info[key]]
    if "safety" in info:
        lines.append(f"safety: {info['safety']}")
    if info.get("named_by"):
        lines.append(f"weights named by: {info['named_by']}")
    return lines


def _quant(q: dict[str, Any] | None) -> str:
    if not q:
        return ""
    if "per_channel" in q:
        return f"  per-channel x{q['per_channel']} (axis {q['axis']}) scale {q['scale'][:4]}..."
    return f"  scale {q['scale']:g} zero_point {q['zero_point']}"


def _all_tensor_lines(info: dict[str, Any]) -> list[str]:
    """``--all-tensors``: each weight with its values; a .tflite's tensors with quantization."""
    found = info.get("all_tensors")
    if found is None:
        return []
    lines = [f"all tensors ({len(found)}):"]
    if isinstance(found, list):  # TFLite
        for t in found:
            lines.append(
                f"  {t['index']}  {t['name']}  {t['dtype']}  {_fmt_shape(t['shape'])}"
                + _quant(t.get("quantization"))
            )
        return lines
    for name, t in found.items():
        lines.append(f"  {name}  {t['dtype']}  {_fmt_shape(t['shape'])}")
        shown = t["values"] if "values" in t else {k: t[k] for k in ("min", "max", "mean", "first")}
        lines.append("    " + json.dumps(shown))
    return lines


def _meta_lines(meta: dict[str, Any]) -> list[str]:
    """One MetaGraph: tags, saver, collections, signatures, functions, safety, graph, nodes."""
    lines: list[str] = []
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
    for k, v in meta["collections"].items():
        items = ", ".join(str(i) for i in v["items"][:6])
        more = f" ... ({v['count']} in all)" if v["count"] > 6 else ""
        lines.append(f"  collection {k}: {items}{more}")
    for key, sig in meta.get("signatures", {}).items():
        if sig.get("init_op"):
            outs: list[dict[str, Any]] = list(sig["outputs"].values())
            op = outs[0]["name"] if outs else "?"
            lines.append(f"  signature {key!r}: the init op ({op}), run once at load time")
            continue
        lines.append(f"  signature {key!r} ({sig['method'] or 'no method'}):")
        lines += [
            f"    in  {k}: {v['name']} {v['dtype']} {_fmt_shape(v['shape'])}"
            for k, v in sig["inputs"].items()
        ]
        lines += [
            f"    out {k}: {v['name']} {v['dtype']} {_fmt_shape(v['shape'])}"
            for k, v in sig["outputs"].items()
        ]
    for name, options in meta.get("functions", {}).items():
        lines.append(f"  function {name!r}:")
        for i, o in enumerate(options, 1):
            if "undecoded" in o:
                lines.append(f"    option {i}: {o['function']} ({o['undecoded']})")
                continue
            lines.append(
                f"    option {i}: inputs {_spec(o['inputs'])} -> outputs {_spec(o['outputs'])}"
            )
    lines.append(f"  safety: {meta['safety']}")
    lines += _graph_lines(meta["graph"], "  ")
    lines += _node_lines(meta.get("nodes"), "  ")
    return lines


def render_text(info: dict[str, Any]) -> str:
    """A human-readable report of :func:`inspect_path`'s result."""
    lines = [f"format: {info['format']}"]
    for warning in info.get("warnings", []):
        lines.append(f"WARNING: {warning}")
    for key in ("kind", "path", "prefix", "step", "meta", "bytes", "version", "description"):
        if info.get(key) not in (None, ""):
            lines.append(f"{key}: {info[key]}")
    lines += _keras_lines(info)
    lines += _variable_lines(info)
    lines += _state_file_lines(info)
    lines += _tflite_lines(info)
    for meta in info.get("meta_graphs", [info] if "meta_info" in info else []):
        lines += _meta_lines(meta)
    if "graph" in info and "meta_info" not in info:
        lines.append(f"safety: {info['safety']}")
        lines += _graph_lines(info["graph"])
    lines += _node_lines(info.get("nodes"), "")
    lines += _all_tensor_lines(info)
    lines += _tensor_lines(info)
    return "\n".join(lines)


def _variable_lines(info: dict[str, Any]) -> list[str]:
    """The variables of a checkpoint, SavedModel or Keras file: shape, dtype, object key."""
    if "variables" not in info or info["format"] not in (
        "checkpoint",
        "saved_model",
        "keras",
        "keras_weights",
    ):
        return []
    lines = [f"variables ({len(info['variables'])}, {info.get('parameters', 0):,} parameters):"]
    dtypes = info.get("dtypes", {})
    objects = info.get("objects", {})
    keys = info.get("variable_keys", {})
    for k, v in info["variables"].items():
        line = f"  {k}  {_fmt_shape(v)}  {dtypes.get(k, '')}".rstrip()
        if k in objects:
            o = objects[k]
            path = "" if o["path"] == k else f"path {o['path']}; "
            line += f"  ({path}key {o['key']})"
        elif k in keys:
            line += "  (key " + ", ".join(keys[k]) + ")"
        lines.append(line)
    return lines


def _state_file_lines(info: dict[str, Any]) -> list[str]:
    """A checkpoint folder's state file: every checkpoint it lists, the latest marked."""
    if not info.get("state_file"):
        return []
    st = info["state_file"]
    lines = [f"state file: {st['path']}"]
    for e in st["all"]:
        flag = " (latest)" if st["latest"] and e["path"] == st["latest"]["path"] else ""
        bad = "" if e["exists"] else " MISSING"
        bad += " POINTS ELSEWHERE" if e["points_elsewhere"] else ""
        lines.append(f"  {e['path']}  step {e['step']}{flag}{bad}")
    return lines


def _tflite_lines(info: dict[str, Any]) -> list[str]:
    """A TFLite file's inputs, outputs (with quantization), parameters and ops."""
    if info["format"] != "tflite":
        return []
    lines = ["inputs:"]
    lines += [
        f"  {t['name']}  {t['dtype']}  {_fmt_shape(t['shape'])}{_quant(t.get('quantization'))}"
        for t in info["inputs"]
    ]
    lines.append("outputs:")
    lines += [
        f"  {t['name']}  {t['dtype']}  {_fmt_shape(t['shape'])}{_quant(t.get('quantization'))}"
        for t in info["outputs"]
    ]
    lines.append(f"parameters: {info['parameters']:,}  tensors: {info['tensors']}")
    lines.append("ops: " + ", ".join(f"{k} {v}" for k, v in info["ops"].items()))
    return lines


def _tensor_lines(info: dict[str, Any]) -> list[str]:
    """The one tensor asked for (``--tensor``): its values, or min / max / mean / first."""
    if "tensor" not in info:
        return []
    t = info["tensor"]
    key = f"  (key {t['key']})" if t.get("key") not in (None, t["name"]) else ""
    shown = t["values"] if "values" in t else {k: t[k] for k in ("min", "max", "mean", "first")}
    return [
        f"tensor {t['name']}  {t['dtype']}  {_fmt_shape(t['shape'])}{key}",
        "  " + json.dumps(shown),
    ]
