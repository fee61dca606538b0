"""The ``model`` command: inspect, freeze, export-weights, unfreeze, convert, checkpoints, quantize.

A thin layer: each subcommand's parser (:mod:`detector.cli.model_parsers`) calls the
handler of the same name (:mod:`detector.cli.model_handlers`), which calls the toolkit.
"""

from __future__ import annotations

import argparse

from detector.cli.model_parsers import BUILDERS

_R = argparse.RawDescriptionHelpFormatter

MODEL_EPILOG = """\
subcommands:
  inspect         what a model file holds: variables, inputs, outputs, ops, signatures
  freeze          checkpoint -> frozen .pb (+ a sidecar naming the frozen variables)
  export-weights  frozen .pb, checkpoint or SavedModel -> .npz of name -> array
  unfreeze        frozen .pb -> trainable checkpoint (constants become variables again)
  convert         checkpoint <-> frozen .pb <-> SavedModel; Keras .keras -> any; TFLite SSD -> .pb
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
        "frozen graphs, SavedModels, Keras 3 .keras / .weights.h5 and TFLite SSDs.",
    )

    def usage(_args: argparse.Namespace) -> int:
        model.print_help()
        return 2

    model.set_defaults(func=usage)
    msub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")

    for build in BUILDERS:
        build(msub, parents)
