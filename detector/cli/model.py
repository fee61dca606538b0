"""The ``model`` command: inspect, freeze, export-weights, unfreeze, convert, checkpoints.

A thin layer: each handler parses its flags, calls the library function of the same
name, and prints the result as text or ``--json``. TensorFlow is imported by those
functions only, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from detector.errors import ConfigError

_R = argparse.RawDescriptionHelpFormatter

MODEL_EPILOG = """\
subcommands:
  inspect         what a model file holds: variables, inputs, outputs, ops, signatures
  freeze          checkpoint -> frozen .pb (+ a sidecar naming the frozen variables)
  export-weights  frozen .pb, checkpoint or SavedModel -> .npz of name -> array
  unfreeze        frozen .pb -> trainable checkpoint (constants become variables again)
  convert         checkpoint <-> frozen .pb <-> SavedModel, and TFLite SSD -> frozen .pb
  checkpoints     what a checkpoint folder's state file records; --repair copied folders
  quantize        int8 for the openvino backend (NNCF), kept only if it passes a parity gate

examples:
  python main.py model inspect models/ssd_mobilenet_v2_coco/frozen_inference_graph.pb
  python main.py model freeze train/ -o frozen.pb --outputs logits/BiasAdd
  python main.py model convert model.tflite -o frozen_inference_graph.pb
  python main.py model checkpoints train/ --repair
  python main.py model quantize               # default model, calibrated on the sample video

Every graph is checked against an op allowlist before it is imported; graphs that read
or write files, reach the network or run Python are refused unless you pass
--allow-unsafe-ops for a file you trust.
"""


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


def _inspect(args: argparse.Namespace) -> int:
    from detector.tools.inspect import inspect_path, refusals
    from detector.tools.inspect_text import render_text

    info = inspect_path(
        args.path,
        tensor=args.tensor,
        allow_unsafe_ops=args.allow_unsafe_ops,
        nodes=args.nodes,
        node_filter=_node_filter(args),
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


def _freeze(args: argparse.Namespace) -> int:
    from detector.tools.freeze import freeze_checkpoint

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
    """With ``--explain-outputs``: add the explanation outputs to the written ``.pb``."""
    if not args.explain_outputs:
        return {}
    from detector.explain.export import write_explain_outputs

    return write_explain_outputs(
        pb,
        layer=args.explain_layer,
        verify=not args.no_verify,
        allow_unsafe_ops=args.allow_unsafe_ops,
    )


def _explain_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("explanation outputs (see `python main.py explain --help`)")
    g.add_argument(
        "--explain-outputs",
        action="store_true",
        help="add named outputs for heat maps: explain/feature_map, explain/grad (the class "
        "logit's gradient), explain/fine_map, explain/fine_grad, fed explain/anchor and "
        "explain/column (SSD graphs; .pb only)",
    )
    g.add_argument(
        "--explain-layer",
        metavar="NAME",
        help="feature map for explain/feature_map (default: the finest map the heads read)",
    )


def _export(args: argparse.Namespace) -> int:
    from detector.tools.weights import export_weights

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


def _unfreeze(args: argparse.Namespace) -> int:
    from detector.tools.unfreeze import unfreeze

    report = unfreeze(
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


def _convert(args: argparse.Namespace) -> int:
    from detector.model.formats import detect_format

    flags = {k: getattr(args, k) for k in _TFLITE_FLAGS if getattr(args, k) is not None}
    if detect_format(args.source) == "tflite":
        from detector.tools.convert import convert_tflite

        if args.to not in (None, "pb"):
            raise ConfigError(
                f"a .tflite converts to a frozen graph only, not --to {args.to}",
                hint="convert to .pb first, then convert that .pb",
            )
        report = convert_tflite(args.source, args.output, **flags)
        report.update(_explain_outputs(args, str(args.output)))
        keys: tuple[str, ...] = ("output", "output_bytes", "nodes", "output_sha256", *_EXPLAIN_KEYS)
    else:
        from detector.tools.convert import convert

        wants = args.to or ("pb" if str(args.output).endswith(".pb") else None)
        if args.explain_outputs and wants != "pb":
            raise ConfigError(
                f"--explain-outputs writes a frozen .pb, not {wants or repr(str(args.output))}",
                hint="convert to a .pb (-o model.pb) with --explain-outputs",
            )
        if flags:
            names = ", ".join("--" + k.replace("_", "-") for k in flags)
            raise ConfigError(
                f"{names} only apply to a .tflite source", hint="drop them, or pass a .tflite SSD"
            )
        report = convert(
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
        keys = (
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
            *_EXPLAIN_KEYS,
        )
    _emit(report, args.json, _lines(report, keys))
    return 0


def _checkpoints(args: argparse.Namespace) -> int:
    from pathlib import Path

    from detector.errors import CheckpointError
    from detector.model.checkpoints import (
        find_prefixes,
        read_state_file,
        repair_state_file,
        step_of,
    )
    from detector.tools.inspect import state_summary

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


def _quantize(args: argparse.Namespace) -> int:
    from detector.model.backends.quantize import quantize
    from detector.paths import MODELS_DIR, SAMPLES_DIR

    graph = args.graph or MODELS_DIR / "ssd_mobilenet_v2_coco" / "frozen_inference_graph.pb"
    result = quantize(
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


def _init_missing(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--init-missing",
        action="store_true",
        help="graph variables the checkpoint lacks (a Saver(var_list=...) subset) take "
        "their initial values instead of failing; they are listed",
    )


def _common(p: argparse.ArgumentParser, *, unsafe: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    if unsafe:
        p.add_argument(
            "--allow-unsafe-ops",
            action="store_true",
            help="accept graphs with ops outside the allowlist (trusted files only)",
        )


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    """Add the ``model`` command and its subcommands."""
    model = sub.add_parser(
        "model",
        parents=parents,
        formatter_class=_R,
        epilog=MODEL_EPILOG,
        help="inspect, freeze, export weights, unfreeze, convert model files",
        description="Work with TensorFlow model files: checkpoints, "
        "frozen graphs, SavedModels and TFLite SSDs.",
    )

    def usage(_args: argparse.Namespace) -> int:
        model.print_help()
        return 2

    model.set_defaults(func=usage)
    msub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")

    p = msub.add_parser(
        "inspect",
        parents=parents,
        formatter_class=_R,
        help="describe a model file",
        description="Describe a checkpoint (prefix or folder), .meta, frozen "
        ".pb/.pbtxt, SavedModel folder or .tflite; the format is found from "
        "the contents, not the suffix.",
        epilog="""examples:
  python main.py model inspect models/ssd_mobilenet_v2_coco/frozen_inference_graph.pb
  python main.py model inspect train/                       # latest checkpoint in the folder
  python main.py model inspect train/model.ckpt-100 --tensor conv1/kernel
  python main.py model inspect saved_model/ --json
  python main.py model inspect model.tflite
  python main.py model inspect frozen.pb --nodes --op Conv2D,MatMul
  python main.py model inspect graph.pbtxt --nodes --name 'logits/*'

exit codes: 0 described; 1 unreadable (what failed and why); 2 usage;
3 described, but the file holds ops outside the allowlist: loading it would be refused
  (the report's "safety" names them; --allow-unsafe-ops accepts them, exit 0).
""",
    )
    p.add_argument("path", help="model file, folder or checkpoint prefix")
    p.add_argument(
        "--tensor",
        metavar="NAME",
        help="also show this variable's or constant's values (object-based checkpoints: "
        "raw key, object path or variable name)",
    )
    p.add_argument(
        "--nodes",
        action="store_true",
        help="list every node: name, op, inputs and output tensors (graph.get_operations())",
    )
    p.add_argument("--op", metavar="OP[,OP]", help="(--nodes) only nodes of these ops")
    p.add_argument("--name", metavar="GLOB", help="(--nodes) only nodes whose name matches")
    _common(p)
    p.set_defaults(func=_inspect)

    p = msub.add_parser(
        "freeze",
        parents=parents,
        formatter_class=_R,
        help="checkpoint -> frozen .pb",
        description="Freeze a checkpoint (prefix, folder or .meta; the .meta "
        "must be there) into a frozen GraphDef. Works with TF1 ref and TF2 "
        "resource variables; devices are cleared; the result is verified to "
        "hold no variable and to give the checkpoint's outputs on a probe "
        "input. Writes OUT.variables.json mapping constants to variables.",
        epilog="""examples:
  python main.py model freeze train/ -o frozen_inference_graph.pb   # OD API outputs
  python main.py model freeze train/model.ckpt-100 -o add.pb --outputs add
  python main.py model freeze train/ -o f.pb --outputs logits/BiasAdd --exclude 'logits/*'
  python main.py model freeze --graph graph.pbtxt --checkpoint train/model.ckpt-100 -o f.pb
  python main.py model freeze train/ -o f.pb --init-missing   # Saver(var_list) subset
""",
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint prefix, folder or .meta")
    p.add_argument(
        "--checkpoint",
        dest="checkpoint_opt",
        metavar="PREFIX",
        help="the checkpoint, as an option (with --graph)",
    )
    p.add_argument(
        "--graph",
        metavar="GRAPH",
        help="graph written by tf.io.write_graph (.pbtxt or .pb) or a .meta, used instead "
        "of the checkpoint's .meta (the freeze_graph --input_graph workflow)",
    )
    p.add_argument("-o", "--output", required=True, help="frozen .pb to write")
    p.add_argument(
        "--outputs",
        metavar="NODE[,NODE]",
        help="output node names (default: TF OD API names when present)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="keep variables matching this name or glob as variables (repeatable)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the probe comparison")
    _init_missing(p)
    _explain_flags(p)
    _common(p)
    p.set_defaults(func=_freeze)

    p = msub.add_parser(
        "export-weights",
        parents=parents,
        formatter_class=_R,
        help="model -> .npz of name -> array",
        description="Write every weight of a frozen .pb (TF1 <var>/read and "
        "TF2 Const->ReadVariableOp patterns), checkpoint or SavedModel to an "
        ".npz (numpy, never pickle). Load it with np.load(path, "
        "allow_pickle=False) or detector.tools.weights.load_npz.",
        epilog="""examples:
  python main.py model export-weights frozen.pb -o weights.npz
  python main.py model export-weights train/ -o weights.npz
""",
    )
    p.add_argument("path", help="frozen .pb, checkpoint or SavedModel")
    p.add_argument("-o", "--output", required=True, help=".npz to write")
    _common(p)
    p.set_defaults(func=_export)

    p = msub.add_parser(
        "unfreeze",
        parents=parents,
        formatter_class=_R,
        help="frozen .pb -> trainable checkpoint",
        description="Turn a frozen graph back into a checkpoint whose "
        "variables carry the original names (from the freeze sidecar JSON, "
        "else from the graph's patterns), verified on a probe input. In "
        "Python, detector.tools.weights.restore_weights assigns exported "
        "weights to your own graph, skipping a pattern (a new last layer).",
        epilog="""examples:
  python main.py model unfreeze frozen.pb -o ckpt/
  python main.py model unfreeze frozen.pb -o ckpt/ --step 100 --outputs logits/BiasAdd
""",
    )
    p.add_argument("pb", help="frozen .pb or .pbtxt")
    p.add_argument("-o", "--output", required=True, help="checkpoint folder to write")
    p.add_argument("--outputs", metavar="NODE[,NODE]", help="outputs to verify")
    p.add_argument("--step", type=int, default=0, help="global step in the prefix (default 0)")
    p.add_argument("--no-verify", action="store_true", help="skip the probe comparison")
    _common(p)
    p.set_defaults(func=_unfreeze)

    p = msub.add_parser(
        "convert",
        parents=parents,
        formatter_class=_R,
        help="checkpoint <-> .pb <-> SavedModel; .tflite SSD -> .pb",
        description="Convert among checkpoint, frozen .pb and SavedModel "
        "(each way; the result is loaded back and compared with the source "
        "on a probe input), or a TFLite SSD into a frozen graph with the TF "
        "OD API names (image_tensor:0 -> detection_boxes:0, ...).",
        epilog="""examples:
  python main.py model convert train/ -o frozen.pb
  python main.py model convert frozen.pb -o saved/ --to saved_model
  python main.py model convert saved/ -o ckpt/ --to checkpoint
  python main.py model convert ssd.tflite -o frozen_inference_graph.pb --nms-iou 0.5
  python main.py model convert ckpt/ckpt-1 -o m.pb --model my_model.py:build  # tf.train.Checkpoint
  python main.py model convert frozen.pb -o explainable.pb --explain-outputs
""",
    )
    p.add_argument("source", help="checkpoint, frozen .pb, SavedModel folder or .tflite")
    p.add_argument("-o", "--output", required=True, help=".pb file or folder to write")
    p.add_argument(
        "--to",
        choices=("pb", "checkpoint", "saved_model"),
        help="target format (default: pb for a .pb output)",
    )
    p.add_argument("--outputs", metavar="NODE[,NODE]", help="output node names")
    p.add_argument("--signature", default="serving_default", help="SavedModel signature to read")
    p.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="(to pb) keep matching variables as variables",
    )
    p.add_argument("--step", type=int, default=0, help="(to checkpoint) global step")
    p.add_argument(
        "--model",
        metavar="FILE.py:FUNCTION",
        help="(object-based checkpoint source) your function that builds the tf.Module or "
        "Keras model that wrote it; it is built, restored and converted (your code runs)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the probe comparison")
    _init_missing(p)
    g = p.add_argument_group("TFLite SSD source")
    g.add_argument("--nms-iou", type=float, help="NMS IoU threshold (default 0.6)")
    g.add_argument("--score-threshold", type=float, help="score floor before NMS")
    g.add_argument("--max-detections", type=int, help="detections kept per image")
    g.add_argument("--weights", choices=("uint8", "float"), help="weight storage in the graph")
    g.add_argument("--anchors", choices=("file", "generated"), help="anchor source")
    _explain_flags(p)
    _common(p)
    p.set_defaults(func=_convert)

    p = msub.add_parser(
        "checkpoints",
        parents=parents,
        formatter_class=_R,
        help="list a checkpoint folder; --repair its state file",
        description="Show what a folder's 'checkpoint' state file records "
        "(latest, all kept, timestamps) and the checkpoints really there; "
        "with --repair, rewrite absolute paths that point at another folder "
        "(a copied folder) as relative ones. Exits 1 when the latest entry "
        "is missing or points elsewhere.",
        epilog="""examples:
  python main.py model checkpoints train/
  python main.py model checkpoints copied_train/ --repair
""",
    )
    p.add_argument("folder", help="checkpoint folder")
    p.add_argument(
        "--repair",
        action="store_true",
        help="rewrite the state file's paths relative to the folder",
    )
    _common(p, unsafe=False)
    p.set_defaults(func=_checkpoints)

    p = msub.add_parser(
        "quantize",
        parents=parents,
        formatter_class=_R,
        help="int8 for --backend openvino, behind a parity gate",
        description="Quantize a frozen SSD graph's network part to int8 with NNCF "
        "post-training quantization, calibrated on the frames you name; the result is run "
        "beside the TF graph on held-apart images and kept only when their detections agree "
        "(matched >= 95%, same class, IoU >= 0.5). Otherwise it is refused with the figures "
        "(exit 1). Needs the optional extra 'openvino'.",
        epilog="""examples:
  python main.py model quantize                                  # default model and samples
  python main.py model quantize my/frozen.pb --calibration clips/street.mp4 --held-out photos/
  python main.py --backend openvino --precision int8             # then run with it
""",
    )
    p.add_argument("graph", nargs="?", help="frozen .pb (default: the default model)")
    p.add_argument(
        "--calibration",
        metavar="PATH",
        help="folder of images or a video to calibrate on (default: samples/vtest.avi)",
    )
    p.add_argument(
        "--held-out",
        metavar="PATH",
        help="folder of images or a video for the parity gate, apart from the calibration "
        "frames (default: samples/photos/)",
    )
    p.add_argument(
        "--frames", type=int, default=300, help="calibration frames, spread over the source"
    )
    p.add_argument(
        "--min-match",
        type=float,
        default=0.95,
        metavar="RATIO",
        help="the gate: matched detections over the larger count (default 0.95)",
    )
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the openvino model cache (default: .openvino/ beside the graph; the run's "
        "model.cache_dir must be the same)",
    )
    _common(p)
    p.set_defaults(func=_quantize)
