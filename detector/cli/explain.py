"""The ``explain`` command: heat maps of where the model looked for each detection."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from detector.config import load_config
from detector.errors import ConfigError
from detector.explain import DEFAULT_METHOD, METHODS
from detector.explain.explainer import ExplainOptions, explain_images, open_images, read_images
from detector.explain.model import ExplainModel
from detector.labels import load_label_map
from detector.model.options import ModelOptions
from detector.outputs.rundir import make_run_dir
from detector.sources import parse_source

EPILOG = """\
methods (see docs/USAGE.md, "Explain a detection"):
  gradxact   (default) gradient x activation at a finer backbone map (38x38 on the default
             model): an instance map, it points into the detection's box
  gradcam    Grad-CAM at the finest map the SSD heads read (or --layer): a class map, it
             lights every object of the class
  occlusion  a grey patch slid over the image, watching the detection's score: no gradient
             needed, works for any graph, slowest
  all        the three, each its own PNG; explain.json reports every one

Each detection is mapped back to the anchor that produced it, and the pre-NMS class logit of
that anchor is differentiated (non-max suppression has no gradient). A graph written with
`model freeze/convert --explain-outputs` carries its own explanation tensors; they are used.

writes, in -o DIR (default runs/explain-NAME/):
  NAME_detK_LABEL_METHOD.png   the image, the heat map over it, the box, the peak (+)
  explain.json                 per image and detection: label, score, box_xyxy, peak_xy,
                               heat_in_box (share of the map inside the box), per method

examples:
  python main.py explain samples/photos/dog.jpg
  python main.py explain samples/photos/dog.jpg --detection 0 --method all -o runs/dog
  python main.py explain samples/photos/ --method occlusion --threshold 0.6
  python main.py explain 'samples/photos/*.jpg' --colormap inferno --alpha 0.6
"""


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    """Add the ``explain`` command."""

    p = sub.add_parser(
        "explain",
        parents=parents,
        help="heat maps of where the model looked for each detection",
        description="Explain detections: for each kept detection (or the one asked), a heat "
        "map of the evidence for its class at its place, over the image, as PNG, plus "
        "explain.json.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", metavar="IMAGE", help="image file, folder of images or quoted glob")
    p.add_argument("--config", metavar="YAML", help="config file (default: the packaged one)")
    p.add_argument("--model", help="frozen graph (default: the config's model.path)")
    p.add_argument("--labels", help="label map (default: the config's model.labels)")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--detection",
        type=int,
        metavar="K",
        help="explain only kept detection K (0 = best score)",
    )
    which.add_argument(
        "--all", action="store_true", help="explain every kept detection (the default)"
    )
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=(*METHODS, "all"),
        help=f"explanation method (default {DEFAULT_METHOD})",
    )
    p.add_argument(
        "--layer",
        metavar="NAME",
        help="Grad-CAM layer (node or tensor name; default: the finest map the heads read)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="explain detections scoring at least this (default: the config's detect.threshold)",
    )
    _add_look_flags(p)
    p.add_argument("-o", "--output", type=Path, metavar="DIR", help="output folder")
    p.add_argument(
        "--allow-unsafe-ops",
        action="store_true",
        help="accept graphs with ops outside the allowlist (trusted files only)",
    )
    p.set_defaults(func=handle)


def _add_look_flags(p: argparse.ArgumentParser) -> None:
    """How many detections, and how the heat maps look (colours, occlusion grid)."""
    p.add_argument(
        "--max-detections", type=int, default=20, metavar="N", help="at most N per image"
    )
    p.add_argument("--colormap", default="jet", help="OpenCV colour map (jet, turbo, inferno...)")
    p.add_argument("--alpha", type=float, default=0.45, help="heat colour weight, 0..1")
    p.add_argument(
        "--occlusion-grid",
        type=int,
        default=16,
        metavar="N",
        help="occlusion: cells per image side (default 16)",
    )
    p.add_argument(
        "--occlusion-patch",
        type=int,
        default=3,
        metavar="C",
        help="occlusion: patch side in cells (default 3)",
    )


def handle(args: argparse.Namespace) -> int:
    """Handler of ``explain``: config → model → explanations → PNGs + explain.json."""

    config = load_config(
        args.config,
        {
            "model.path": args.model,
            "model.labels": args.labels,
            "detect.threshold": None if args.threshold is None else str(args.threshold),
        },
    )
    if args.max_detections < 1:
        raise ConfigError(f"--max-detections must be 1 or more, got {args.max_detections}")
    methods = METHODS if args.method == "all" else (args.method,)
    explain = ExplainOptions(
        methods=tuple(methods),
        detection=args.detection,
        threshold=config.detect.threshold,
        max_detections=args.max_detections,
        colormap=args.colormap,
        alpha=args.alpha,
        occlusion_grid=args.occlusion_grid,
        occlusion_patch=args.occlusion_patch,
    )
    spec = parse_source(args.images)
    labels = load_label_map(config.model.labels) if config.model.labels else None
    source = open_images(args.images)  # a bad path fails here, before TensorFlow loads

    options = ModelOptions.from_config(config)

    with (
        source,
        ExplainModel(
            options.path,
            layer=args.layer,
            allow_unsafe_ops=args.allow_unsafe_ops or options.allow_unsafe_ops,
            session=options.session_options(),  # device, threads, precision as `run` uses
        ) as model,
    ):
        if args.output is None:
            out_dir = make_run_dir(config.output.dir, f"explain-{spec.run_name}")
        else:
            out_dir = args.output
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create output folder '{out_dir}': {exc}") from exc
        doc = explain_images(model, read_images(source), out_dir, explain, labels)
    _summary(doc, out_dir)
    return 0


def _summary(doc: dict[str, Any], out_dir: Path) -> None:
    first = doc["methods"][0]
    rows = [(img["image"], d) for img in doc["images"] for d in img["detections"]]
    for name, d in rows:
        peak = d.get("peak_xy")
        where = "in box" if d.get("peak_in_box") else "OUTSIDE box"
        print(
            f"{name}  #{d['index']} {d['label']} {d['score']:.2f}  {first}: peak {peak} {where}, "
            f"{100 * d.get('heat_in_box', 0.0):.0f}% of heat in box"
        )
    print(f"{len(rows)} detection(s) in {len(doc['images'])} image(s) explained -> {out_dir}/")
