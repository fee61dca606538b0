"""The ``model`` subcommands' handlers: call the toolkit function, print text or ``--json``.

TensorFlow is imported by those functions only, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detector.errors import CheckpointError, ConfigError, DetectorError
from detector.explain.export import write_explain_outputs
from detector.model.backends.quantize import quantize as quantize_int8
from detector.model.checkpoints import find_prefixes, read_state_file, repair_state_file, step_of
from detector.model.formats import detect_format
from detector.model.tf_errors import as_model_error, is_tensorflow_error
from detector.paths import MODELS_DIR, SAMPLES_DIR
from detector.tools.convert import convert as convert_model
from detector.tools.convert import convert_tflite, guess_target
from detector.tools.freeze import freeze_checkpoint, sidecar_path
from detector.tools.inspect import inspect_path, refusals, state_summary
from detector.tools.inspect_text import render_text
from detector.tools.keras_convert import convert_keras
from detector.tools.unfreeze import unfreeze as unfreeze_checkpoint
from detector.tools.weights import export_weights

Handler = Callable[[argparse.Namespace], int]


def _tf_errors(handler: Handler) -> Handler:
    """Errors TensorFlow raises inside a command become the error family's sentence (its
    first line and a hint); their stack traces stay behind ``--debug``."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except DetectorError:
            raise
        except Exception as exc:
            if not is_tensorflow_error(exc):
                raise
            raise as_model_error(exc, f"model {args.model_command}") from exc

    return run


def _emit(result: Any, as_json: bool, text: str) -> None:
    if as_json:
        json.dump(result, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(text)


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _lines(report: dict[str, Any], keys: tuple[str, ...]) -> str:
    return "\n".join(f"{k}: {report[k]}" for k in keys if report.get(k) is not None)


@_tf_errors
def inspect(args: argparse.Namespace) -> int:
    info = inspect_path(
        args.path,
        tensor=args.tensor,
        allow_unsafe_ops=args.allow_unsafe_ops,
        nodes=args.nodes,
        node_filter=_node_filter(args),
        all_tensors=args.all_tensors,
    )
    _emit(info, args.json, render_text(info))
    refused = refusals(info)
    for why in refused:
        print(f"refused: {why}", file=sys.stderr)
    return INSPECT_REFUSED if refused else 0


#: ``model inspect``'s exit code for a file it describes but would refuse to load.
INSPECT_REFUSED = 3


def _node_filter(args: argparse.Namespace) -> dict[str, str] | None:
    if not (args.op or args.name):
        return None
    args.nodes = True
    return {"op": args.op or "", "name": args.name or ""}


@_tf_errors
def freeze(args: argparse.Namespace) -> int:
    checkpoint = args.checkpoint_opt or args.checkpoint
    if checkpoint is None:
        raise ConfigError(
            "model freeze needs a checkpoint",
            hint="pass it as CHECKPOINT or --checkpoint PREFIX (with --graph GRAPH.pbtxt "
            "for a tf.io.write_graph graph)",
        )
    if args.checkpoint_opt and args.checkpoint:
        raise ConfigError(
            f"two checkpoints given: '{args.checkpoint}' and --checkpoint '{args.checkpoint_opt}'",
            hint="pass one",
        )
    report = freeze_checkpoint(
        checkpoint,
        args.output,
        outputs=_csv(args.outputs),
        exclude=args.exclude or (),
        verify=not args.no_verify,
        allow_unsafe_ops=args.allow_unsafe_ops,
        init_missing=args.init_missing,
        graph=args.graph,
    )
    report.update(_explain_outputs(args, report["out"]))
    _emit(
        report,
        args.json,
        _lines(
            report,
            (
                "out",
                "sidecar",
                "inputs",
                "outputs",
                "frozen_variables",
                "initialised",
                "kept",
                "parameters",
                "nodes",
                "bytes",
                "max_diff",
                *_EXPLAIN_KEYS,
            ),
        ),
    )
    return 0


_EXPLAIN_KEYS = ("explain_layer", "explain_fine_layer", "explain_max_diff")


def _explain_outputs(args: argparse.Namespace, pb: str) -> dict[str, Any]:
    """With ``--explain-outputs``: add the explanation outputs to the written ``.pb``.

    When that fails, the plain ``.pb`` this command wrote (and its sidecar) is removed:
    the command promised an explainable graph, and a failed run leaves nothing behind.
    """
    if not args.explain_outputs:
        return {}

    try:
        return write_explain_outputs(
            pb,
            layer=args.explain_layer,
            verify=not args.no_verify,
            allow_unsafe_ops=args.allow_unsafe_ops,
        )
    except BaseException:
        for path in (Path(pb), sidecar_path(pb)):
            path.unlink(missing_ok=True)
        raise


@_tf_errors
def export(args: argparse.Namespace) -> int:
    report = export_weights(args.path, args.output, allow_unsafe_ops=args.allow_unsafe_ops)
    kinds = report["weight_kinds"]
    lines = [_lines(report, ("out", "arrays", "parameters", "bytes"))]
    lines.append("by kind: " + ", ".join(f"{k} {n}" for k, n in report["kinds"].items()))
    lines += [f"  {k}  {v[0]}  {v[1]}  {kinds.get(k, '')}" for k, v in report["names"].items()]
    lines += [f"skipped: {k} ({why})" for k, why in report["skipped"].items()]
    if report["unattributed"]:
        lines.append(
            f"NOT exported: {len(report['unattributed'])} float constant(s) not attributed "
            "to a weight (name, shape):"
        )
        lines += [f"  {k}  {v}" for k, v in report["unattributed"].items()]
    text = "\n".join(lines)
    _emit(report, args.json, text)
    return 0


@_tf_errors
def unfreeze(args: argparse.Namespace) -> int:
    report = unfreeze_checkpoint(
        args.pb,
        args.output,
        outputs=_csv(args.outputs),
        step=args.step,
        verify=not args.no_verify,
        allow_unsafe_ops=args.allow_unsafe_ops,
    )
    text = (
        _lines(report, ("prefix", "meta", "parameters", "named_by", "max_diff"))
        + f"\nvariables: {len(report['variables'])}"
    )
    _emit(report, args.json, text)
    return 0


_TFLITE_FLAGS = ("nms_iou", "score_threshold", "max_detections", "weights", "anchors")


_CONVERT_KEYS = (
    "source_format",
    "target",
    "out",
    "prefix",
    "sidecar",
    "inputs",
    "outputs",
    "variables",
    "initialised",
    "max_diff",
    "keras_max_diff",
    *_EXPLAIN_KEYS,
)


@_tf_errors
def convert(args: argparse.Namespace) -> int:
    flags = {k: getattr(args, k) for k in _TFLITE_FLAGS if getattr(args, k) is not None}
    fmt = detect_format(args.source)
    if fmt == "tflite":
        report = _convert_tflite(args, flags)
        keys: tuple[str, ...] = ("output", "output_bytes", "nodes", "output_sha256", *_EXPLAIN_KEYS)
    else:
        if flags:
            names = ", ".join("--" + k.replace("_", "-") for k in flags)
            raise ConfigError(
                f"{names} only apply to a .tflite source", hint="drop them, or pass a .tflite SSD"
            )
        report = _convert_model(args, fmt)
        keys = _CONVERT_KEYS
    _emit(report, args.json, _lines(report, keys))
    return 0


def _convert_tflite(args: argparse.Namespace, flags: dict[str, Any]) -> dict[str, Any]:
    if args.to not in (None, "pb"):
        raise ConfigError(
            f"a .tflite converts to a frozen graph only, not --to {args.to}",
            hint="convert to .pb first, then convert that .pb",
        )
    report = convert_tflite(args.source, args.output, **flags)
    report.update(_explain_outputs(args, str(args.output)))
    return report


def _convert_model(args: argparse.Namespace, fmt: str) -> dict[str, Any]:
    """A checkpoint, frozen graph, SavedModel or Keras file to ``--to``."""

    wants = args.to or ("pb" if str(args.output).endswith(".pb") else None)
    if args.explain_outputs and wants != "pb":
        raise ConfigError(
            f"--explain-outputs writes a frozen .pb, not {wants or repr(str(args.output))}",
            hint="convert to a .pb (-o model.pb) with --explain-outputs",
        )
    if fmt in ("keras", "keras_weights"):
        report = convert_keras(
            Path(args.source),
            fmt,
            Path(args.output),
            to=args.to or guess_target(Path(args.output)),
            model=args.model,
            verify=not args.no_verify,
            step=args.step,
            exclude=args.exclude or (),
        )
    else:
        report = convert_model(
            args.source,
            args.output,
            to=args.to,
            outputs=_csv(args.outputs),
            signature=args.signature,
            exclude=args.exclude or (),
            step=args.step,
            verify=not args.no_verify,
            allow_unsafe_ops=args.allow_unsafe_ops,
            init_missing=args.init_missing,
            model=args.model,
        )
    report.update(_explain_outputs(args, str(report["out"])))
    return report


def checkpoints(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise CheckpointError(
            f"'{folder}' is not a folder",
            hint="pass the folder that holds the 'checkpoint' state file",
        )
    result: dict[str, Any] = {"folder": str(folder)}
    if args.repair:
        result["repaired"] = [{"old": o, "new": n} for o, n in repair_state_file(folder)]
    state = read_state_file(folder)
    result["state_file"] = state_summary(state) if state else None
    result["checkpoints"] = [{"prefix": p.name, "step": step_of(p)} for p in find_prefixes(folder)]
    highest = result["checkpoints"][-1]["prefix"] if result["checkpoints"] else None
    result["highest_step"] = highest
    lines = [f"folder: {folder}"]
    for change in result.get("repaired", []):
        lines.append(f"repaired: {change['old']} -> {change['new']}")
    if args.repair and not result["repaired"]:
        lines.append("repaired: nothing to repair")
    if state is None:
        lines.append(
            "state file: none (TensorFlow would find no latest checkpoint; the "
            f"toolkit uses the highest step: {highest or 'none'})"
        )
    else:
        st = result["state_file"]
        lines.append(f"latest: {st['latest']['path'] if st['latest'] else 'none'}")
        for e in st["all"]:
            when = e["timestamp"] or e["modified"]
            stamp = (
                "" if when is None else time.strftime("  %Y-%m-%d %H:%M:%S", time.localtime(when))
            )
            flags = ("" if e["exists"] else "  MISSING") + (
                "  POINTS ELSEWHERE (run with --repair)" if e["points_elsewhere"] else ""
            )
            lines.append(f"  {e['path']}  step {e['step']}{stamp}{flags}")
    lines.append(
        "in the folder: " + (", ".join(c["prefix"] for c in result["checkpoints"]) or "no *.index")
    )
    _emit(result, args.json, "\n".join(lines))
    bad = state is not None and any(
        not e.exists or e.elsewhere for e in ([state.latest] if state.latest else [])
    )
    return 1 if bad else 0


def quantize(args: argparse.Namespace) -> int:
    graph = args.graph or MODELS_DIR / "ssd_mobilenet_v2_coco" / "frozen_inference_graph.pb"
    result = quantize_int8(
        graph,
        args.calibration or SAMPLES_DIR / "vtest.avi",
        args.held_out or SAMPLES_DIR / "photos",
        frames=args.frames,
        allow_unsafe_ops=args.allow_unsafe_ops,
        min_ratio=args.min_match,
        cache_dir=args.cache_dir,
    )
    doc = {
        "ir": str(result.ir),
        "report": str(result.report_path),
        "calibration_frames": result.calibration_frames,
        "quantize_s": round(result.quantize_s, 1),
        "parity": result.parity.to_dict(),
    }
    text = (
        f"int8 model: {result.ir}\n"
        f"calibrated on {result.calibration_frames} frames in {result.quantize_s:.1f} s\n"
        f"parity gate vs the TF graph: {result.parity.summary()}\n"
        f"use it: python main.py --backend openvino --precision int8"
    )
    _emit(doc, args.json, text)
    return 0
