"""The ``model`` subcommands' parsers: flags, help and examples, each wired to its handler."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detector.cli import model_handlers as handlers

#: The flags several subcommands share: names and argparse keywords (a subcommand may give
#: its own help). One home, so a shared flag means the same everywhere.
_SHARED: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "output": (("-o", "--output"), {"required": True}),
    "outputs": (("--outputs",), {"metavar": "NODE[,NODE]"}),
    "exclude": (("--exclude",), {"action": "append", "metavar": "PATTERN"}),
    "step": (("--step",), {"type": int, "default": 0}),
    "no-verify": (("--no-verify",), {"action": "store_true", "help": "skip the probe comparison"}),
    "init-missing": (
        ("--init-missing",),
        {
            "action": "store_true",
            "help": "graph variables the checkpoint lacks (a Saver(var_list=...) subset) take "
            "their initial values instead of failing; they are listed",
        },
    ),
    "json": (("--json",), {"action": "store_true", "help": "print the result as JSON"}),
    "allow-unsafe-ops": (
        ("--allow-unsafe-ops",),
        {
            "action": "store_true",
            "help": "accept graphs with ops outside the allowlist (trusted files only)",
        },
    ),
}

_Adds = argparse.ArgumentParser | argparse._ArgumentGroup


def _shared(p: _Adds, name: str, help: str | None = None) -> None:
    """Add the shared flag ``name`` (a key of ``_SHARED``), with ``help`` when given."""
    names, kwargs = _SHARED[name]
    p.add_argument(*names, **(kwargs if help is None else {**kwargs, "help": help}))


def _switch(p: _Adds, flag: str, help: str) -> None:
    """An on/off flag (``store_true``)."""
    p.add_argument(flag, action="store_true", help=help)


@dataclass(frozen=True)
class _Texts:
    """What a subcommand's ``--help`` says: the one-line help, the description, examples."""

    help: str
    description: str
    epilog: str


def _subcommand(
    msub: Any,
    parents: list[argparse.ArgumentParser],
    name: str,
    func: Callable[[argparse.Namespace], int],
    texts: _Texts,
) -> argparse.ArgumentParser:
    """The parser of ``model NAME`` calling ``func``, with its help texts."""
    p: argparse.ArgumentParser = msub.add_parser(
        name,
        parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help=texts.help,
        description=texts.description,
        epilog=texts.epilog,
    )
    p.set_defaults(func=func)
    return p


def _explain_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("explanation outputs (see `python main.py explain --help`)")
    _switch(
        g,
        "--explain-outputs",
        "add named outputs for heat maps: explain/feature_map, explain/grad (the class "
        "logit's gradient), explain/fine_map, explain/fine_grad, fed explain/anchor and "
        "explain/column (SSD graphs; .pb only)",
    )
    g.add_argument(
        "--explain-layer",
        metavar="NAME",
        help="feature map for explain/feature_map (default: the finest map the heads read)",
    )


def _common(p: argparse.ArgumentParser, *, unsafe: bool = True) -> None:
    _shared(p, "json")
    if unsafe:
        _shared(p, "allow-unsafe-ops")


_INSPECT = _Texts(
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


def _inspect_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model inspect`` parser."""
    p = _subcommand(msub, parents, "inspect", handlers.inspect, _INSPECT)
    p.add_argument("path", help="model file, folder or checkpoint prefix")
    p.add_argument(
        "--tensor",
        metavar="NAME",
        help="also show this variable's or constant's values (object-based checkpoints: "
        "raw key, object path or variable name)",
    )
    _switch(
        p,
        "--nodes",
        "list every node: name, op, inputs and output tensors (graph.get_operations())",
    )
    _switch(
        p,
        "--all-tensors",
        "every weight's values (as inspect_checkpoint --all_tensors); a .tflite's every "
        "tensor with its quantization",
    )
    p.add_argument("--op", metavar="OP[,OP]", help="(--nodes) only nodes of these ops")
    p.add_argument("--name", metavar="GLOB", help="(--nodes) only nodes whose name matches")
    _common(p)


_FREEZE = _Texts(
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


def _freeze_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model freeze`` parser."""
    p = _subcommand(msub, parents, "freeze", handlers.freeze, _FREEZE)
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
    _shared(p, "output", "frozen .pb to write")
    _shared(p, "outputs", "output node names (default: TF OD API names when present)")
    _shared(p, "exclude", "keep variables matching this name or glob as variables (repeatable)")
    _shared(p, "no-verify")
    _shared(p, "init-missing")
    _explain_flags(p)
    _common(p)


_EXPORT_WEIGHTS = _Texts(
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


def _export_weights_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model export-weights`` parser."""
    p = _subcommand(msub, parents, "export-weights", handlers.export, _EXPORT_WEIGHTS)
    p.add_argument("path", help="frozen .pb, checkpoint or SavedModel")
    _shared(p, "output", ".npz to write")
    _common(p)


_UNFREEZE = _Texts(
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


def _unfreeze_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model unfreeze`` parser."""
    p = _subcommand(msub, parents, "unfreeze", handlers.unfreeze, _UNFREEZE)
    p.add_argument("pb", help="frozen .pb or .pbtxt")
    _shared(p, "output", "checkpoint folder to write")
    _shared(p, "outputs", "outputs to verify")
    _shared(p, "step", "global step in the prefix (default 0)")
    _shared(p, "no-verify")
    _common(p)


_CONVERT = _Texts(
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


def _convert_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model convert`` parser."""
    p = _subcommand(msub, parents, "convert", handlers.convert, _CONVERT)
    p.add_argument("source", help="checkpoint, frozen .pb, SavedModel folder or .tflite")
    _shared(p, "output", ".pb file or folder to write")
    p.add_argument(
        "--to",
        choices=("pb", "checkpoint", "saved_model"),
        help="target format (default: pb for a .pb output)",
    )
    _shared(p, "outputs", "output node names")
    p.add_argument("--signature", default="serving_default", help="SavedModel signature to read")
    _shared(p, "exclude", "(to pb) keep matching variables as variables")
    _shared(p, "step", "(to checkpoint) global step")
    p.add_argument(
        "--model",
        metavar="FILE.py:FUNCTION",
        help="(object-based checkpoint source) your function that builds the tf.Module or "
        "Keras model that wrote it; it is built, restored and converted (your code runs)",
    )
    _shared(p, "no-verify")
    _shared(p, "init-missing")
    _tflite_flags(p)
    _explain_flags(p)
    _common(p)


def _tflite_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("TFLite SSD source")
    g.add_argument("--nms-iou", type=float, help="NMS IoU threshold (default 0.6)")
    g.add_argument("--score-threshold", type=float, help="score floor before NMS")
    g.add_argument("--max-detections", type=int, help="detections kept per image")
    g.add_argument("--weights", choices=("uint8", "float"), help="weight storage in the graph")
    g.add_argument("--anchors", choices=("file", "generated"), help="anchor source")


_CHECKPOINTS = _Texts(
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


def _checkpoints_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model checkpoints`` parser."""
    p = _subcommand(msub, parents, "checkpoints", handlers.checkpoints, _CHECKPOINTS)
    p.add_argument("folder", help="checkpoint folder")
    _switch(p, "--repair", "rewrite the state file's paths relative to the folder")
    _common(p, unsafe=False)


_QUANTIZE = _Texts(
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


def _quantize_parser(msub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The ``model quantize`` parser."""
    p = _subcommand(msub, parents, "quantize", handlers.quantize, _QUANTIZE)
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


BUILDERS = (
    _inspect_parser,
    _freeze_parser,
    _export_weights_parser,
    _unfreeze_parser,
    _convert_parser,
    _checkpoints_parser,
    _quantize_parser,
)
