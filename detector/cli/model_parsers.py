"""The ``model`` subcommands' parsers: flags, help and examples, each wired to its handler."""

from __future__ import annotations

import argparse
from typing import Any

from detector.cli import model_handlers as handlers

_R = argparse.RawDescriptionHelpFormatter


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


def _inspect_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model inspect`` parser."""
    p = msub.add_parser(
        "inspect",
        parents=parents,
        formatter_class=_R,
        help="describe a model file",
        description="Describe a checkpoint (prefix or folder), .meta, frozen "
        ".pb/.pbtxt, SavedModel folder, Keras .keras / .weights.h5 or .tflite; the format "
        "is found from the contents, not the suffix. Nothing in the file is run.",
        epilog="""examples:
  python main.py model inspect models/ssd_mobilenet_v2_coco/frozen_inference_graph.pb
  python main.py model inspect train/                       # latest checkpoint in the folder
  python main.py model inspect train/model.ckpt-100 --tensor conv1/kernel
  python main.py model inspect saved_model/ --json
  python main.py model inspect model.tflite
  python main.py model inspect model.keras                  # Keras 3: layers, weights, in/outputs
  python main.py model inspect train/ --all-tensors         # every variable's values
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
    p.add_argument(
        "--all-tensors",
        action="store_true",
        help="every weight's values (as inspect_checkpoint --all_tensors); a .tflite's every "
        "tensor with its quantization",
    )
    p.add_argument("--op", metavar="OP[,OP]", help="(--nodes) only nodes of these ops")
    p.add_argument("--name", metavar="GLOB", help="(--nodes) only nodes whose name matches")
    _common(p)
    p.set_defaults(func=handlers.inspect)


def _freeze_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model freeze`` parser."""
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
    p.set_defaults(func=handlers.freeze)


def _export_weights_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model export-weights`` parser."""
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
    p.set_defaults(func=handlers.export)


def _unfreeze_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model unfreeze`` parser."""
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
    p.set_defaults(func=handlers.unfreeze)


def _convert_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model convert`` parser."""
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
  python main.py model convert model.keras -o m.pb                   # checked against Keras
  python main.py model convert w.weights.h5 -o m.pb --model my_model.py:build
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
    p.set_defaults(func=handlers.convert)


def _checkpoints_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model checkpoints`` parser."""
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
    p.set_defaults(func=handlers.checkpoints)


def _quantize_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model quantize`` parser."""
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
    p.set_defaults(func=handlers.quantize)


BUILDERS = (
    _inspect_parser,
    _freeze_parser,
    _export_weights_parser,
    _unfreeze_parser,
    _convert_parser,
    _checkpoints_parser,
    _quantize_parser,
)
