"""The ``run`` command (the default): flags -> config overrides -> :func:`detector.app.run_app`."""

from __future__ import annotations

import argparse

from detector.config import load_config

EXAMPLES = """\
examples:
  python main.py                                   # default config: sample video -> runs/vtest/
  python main.py --source 0 --show                 # webcam 0 in a window (q or Esc quits)
  python main.py --source clips/street.mp4         # a video file
  python main.py --source samples/photos/ --images --no-video   # a folder of photos
  python main.py --source rtsp://192.168.1.20/live --max-frames 300   # a network stream
  python main.py --config configs/webcam.yml       # a ready config (see configs/)
  python main.py --model my/frozen_inference_graph.pb --labels my/label_map.pbtxt
  python main.py --model my/saved_model/ --threshold 0.3 --classes person,car
  python main.py --detect-every 3 --output /tmp/runs --name test
  python main.py --backend openvino                # the network in OpenVINO (bf16 where native)
  python main.py --backend openvino --precision int8   # after: python main.py model quantize

Flags override the config's keys (configs/default.yml documents each one).
Outputs go to a new folder <output>/<name> (never overwritten): annotated.mp4,
detections.jsonl (one JSON line per frame), images/ and run.json.
Exit codes: 0 ok, 1 runtime error, 2 usage or config error, 130 interrupted.
"""

# flag dest -> config key (values are handed over as strings: the config parses and checks
# them, so a bad flag gets the same message as a bad key).
_FLAG_KEYS = {
    "source": "source.uri",
    "show": "output.show",
    "model": "model.path",
    "labels": "model.labels",
    "threshold": "detect.threshold",
    "classes": "detect.classes",
    "detect_every": "detect.detect_every",
    "workers": "model.workers",
    "max_frames": "run.max_frames",
    "output": "output.dir",
    "name": "output.name",
    "video": "output.video",
    "video_format": "output.video_format",
    "images": "output.images",
    "jsonl": "output.jsonl",
    "hud": "output.hud",
    "device": "model.device",
    "backend": "model.backend",
    "precision": "model.precision",
    "allow_unsafe_ops": "model.allow_unsafe_ops",
}


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``run`` command (the default command) to ``sub``."""
    p = sub.add_parser(
        "run",
        parents=parents,
        help="(default) detect objects in a video, webcam, stream or image folder",
        description="Detect objects in a camera, video file, stream or image "
        "folder; show and/or write annotated frames, JSON lines and a run summary.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="YAML", help="config file (default: configs/default.yml)")
    g = p.add_argument_group("source and model")
    g.add_argument(
        "--source",
        metavar="URI",
        help="camera index (0), video file, rtsp:// or http(s):// URL, image folder, glob or image",
    )
    g.add_argument(
        "--model", metavar="PATH", help="frozen .pb, SavedModel folder or checkpoint folder"
    )
    g.add_argument("--labels", metavar="PATH", help="label map (.pbtxt or .txt); 'null' for none")
    g.add_argument("--device", choices=("auto", "cpu", "gpu"), help="where the model runs")
    g.add_argument("--workers", metavar="N", help="inference threads for files and folders")
    g.add_argument(
        "--backend",
        choices=("tf", "openvino"),
        help="what runs the model: tf (default) or openvino (frozen SSD graphs, CPU; "
        "needs the 'openvino' extra)",
    )
    g.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32", "int8"),
        help="CPU arithmetic; int8 with --backend openvino after 'model quantize'",
    )
    g.add_argument(
        "--allow-unsafe-ops",
        action="store_const",
        const="true",
        default=None,
        help="load graphs with ops outside the safe allowlist (trusted graphs only)",
    )
    g = p.add_argument_group("detection")
    g.add_argument("--threshold", metavar="SCORE", help="minimum score in [0, 1]")
    g.add_argument(
        "--classes",
        metavar="LIST",
        help="classes to keep, names or ids, comma-separated (e.g. person,car)",
    )
    g.add_argument(
        "--detect-every", metavar="N", help="run the model on every Nth frame, carry boxes between"
    )
    g.add_argument("--max-frames", metavar="N", help="stop after N frames")
    g = p.add_argument_group("outputs")
    g.add_argument(
        "--show",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a window (q or Esc quits); with no display the run goes on disk-only",
    )
    g.add_argument("--output", metavar="DIR", help="folder holding the run folders (runs/)")
    g.add_argument("--name", metavar="NAME", help="run folder name (default: the source's)")
    g.add_argument(
        "--video",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the annotated video",
    )
    g.add_argument("--video-format", choices=("mp4", "avi"), help="mp4 (mp4v) or avi (MJPG)")
    g.add_argument(
        "--images",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write every annotated frame as an image",
    )
    g.add_argument(
        "--jsonl",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write one JSON line per frame",
    )
    g.add_argument(
        "--hud",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw FPS and inference time on the frames",
    )
    p.set_defaults(func=handle)


def overrides_from_args(args: argparse.Namespace) -> dict[str, object]:
    """Config overrides (dotted key → value) for the flags that were given."""
    out: dict[str, object] = {}
    for dest, key in _FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            out[key] = "true" if value is True else "false" if value is False else value
    return out


def handle(args: argparse.Namespace) -> int:
    """Handler of ``run``: config from the file and flags, then the run. Returns 0."""
    from detector.app import run_app

    config = load_config(args.config, overrides_from_args(args))
    run_app(config)
    return 0
