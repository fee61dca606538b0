"""The ``run`` command (the default): flags -> config overrides -> :func:`detector.app.run_app`."""

from __future__ import annotations

import argparse

from detector.app import run_app
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
  python main.py --source clips/street.mp4 --coco --csv --mot   # exports for other tools
  python main.py --track --detect-every 4          # ids (person #7), boxes move between runs
  python main.py --source samples/vtest.avi --serve 8080   # watch at http://127.0.0.1:8080/
  python main.py --source rtsp://cam1/live --source rtsp://cam2/live --serve 8080
  python main.py --source 0 --serve 0.0.0.0:8080 --token-file ~/.detector-token
  python main.py --source clips/                   # a folder of videos: runs/clips/<video>/ each
  python main.py --source photos/ --images --engine ray --ray-actors 4   # on Ray actors
  python main.py --source clips/ --engine ray --ray-address 10.0.0.5:6379   # on a cluster

Flags override the config's keys (configs/default.yml documents each one).
Outputs go to a new folder <output>/<name> (never overwritten): annotated.mp4 (H.264),
detections.jsonl (one JSON line per frame), images/, the exports (--coco, --csv, --mot)
and run.json.
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
    "track": "detect.track",
    "workers": "model.workers",
    "max_frames": "run.max_frames",
    "output": "output.dir",
    "name": "output.name",
    "video": "output.video",
    "video_format": "output.video_format",
    "video_codec": "output.video_codec",
    "coco": "output.coco",
    "csv": "output.csv",
    "mot": "output.mot",
    "mot_all": "output.mot_all",
    "progress": "output.progress",
    "images": "output.images",
    "jsonl": "output.jsonl",
    "hud": "output.hud",
    "zone": "zones",
    "line": "lines",
    "thresholds": "detect.thresholds",
    "min_area": "detect.min_area",
    "max_area": "detect.max_area",
    "mqtt": "events.mqtt",
    "webhook": "events.webhook",
    "snapshots": "events.snapshots",
    "clips": "events.clips",
    "serve": "output.serve",
    "token_file": "serve.token_file",
    "insecure": "serve.insecure",
    "device": "model.device",
    "backend": "model.backend",
    "precision": "model.precision",
    "allow_unsafe_ops": "model.allow_unsafe_ops",
    "init_missing": "model.init_missing",
    "engine": "run.engine",
    "ray_address": "run.ray_address",
    "ray_actors": "run.ray_actors",
    "ray_batch_size": "run.ray_batch_size",
    "ray_cpus_per_actor": "run.ray_cpus_per_actor",
    "ray_gpus_per_actor": "run.ray_gpus_per_actor",
}


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
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
        action="append",
        help="camera index (0), video file, rtsp:// or http(s):// URL, image folder, glob or "
        "image, or a folder of videos (one run each); give it several times for several "
        "sources in one run (one model, a sub-folder each)",
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
        "--init-missing",
        action="store_const",
        const="true",
        default=None,
        help="a checkpoint holding a subset of its graph's variables: the others take their "
        "initial values (logged) instead of failing",
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
    g.add_argument(
        "--track",
        nargs="?",
        const="bytetrack",
        choices=("bytetrack", "sort", "none"),
        help="follow objects with persistent ids (default tracker: bytetrack); between "
        "model runs the boxes move with them",
    )
    g.add_argument("--max-frames", metavar="N", help="stop after N frames")
    g = p.add_argument_group("engine (image folders, globs, videos)")
    g.add_argument(
        "--engine",
        choices=("local", "ray"),
        help="local threads (default) or a pool of Ray actors, local or on a cluster",
    )
    g.add_argument(
        "--ray-address", metavar="ADDR", help="join this Ray cluster (host:6379 or auto)"
    )
    g.add_argument("--ray-actors", metavar="N", help="Ray actors, one model copy each")
    g.add_argument("--ray-batch-size", metavar="N", help="image files per actor call")
    g.add_argument("--ray-cpus-per-actor", metavar="N", help="CPUs Ray reserves per actor")
    g.add_argument("--ray-gpus-per-actor", metavar="N", help="GPUs Ray reserves per actor")
    g = p.add_argument_group("outputs")
    g.add_argument(
        "--show",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a window (q or Esc quits); with no display the run goes on disk-only",
    )
    g.add_argument(
        "--serve",
        metavar="[HOST:]PORT",
        help="serve a live page of every source at http://HOST:PORT/, with the detection "
        "API, /healthz, /readyz and /metrics (HOST 127.0.0.1 unless given; beyond it an API "
        "token is required: serve.token, --token-file or DETECTOR_API_TOKEN)",
    )
    g.add_argument(
        "--token-file", metavar="FILE", help="the server's API token: the file's first line"
    )
    g.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="serve beyond 127.0.0.1 with no API token (anyone on the network sees the video)",
    )
    g.add_argument("--output", metavar="DIR", help="folder holding the run folders (runs/)")
    g.add_argument("--name", metavar="NAME", help="run folder name (default: the source's)")
    g.add_argument(
        "--video",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the annotated video",
    )
    g.add_argument("--video-format", choices=("mp4", "avi"), help="video container")
    g.add_argument(
        "--video-codec",
        choices=("h264", "mp4v", "mjpg"),
        help="h264 (default; plays in browsers, crash-safe .mp4), or mp4v / mjpg through OpenCV",
    )
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
    for flag, what in (
        ("coco", "coco_results.json (COCO results) and coco_images.json"),
        ("csv", "detections.csv, a row per detection"),
        ("mot", "mot.txt, MOT Challenge lines (confirmed tracks above the threshold)"),
        ("mot-all", "every tracked row into mot.txt (unconfirmed ids -1, low-score matches)"),
    ):
        g.add_argument(
            f"--{flag}", action=argparse.BooleanOptionalAction, default=None, help=f"write {what}"
        )
    g.add_argument(
        "--progress",
        choices=("auto", "bar", "log", "off"),
        help="files and folders: a bar on a terminal (auto), a log line every few seconds, or none",
    )
    g.add_argument(
        "--hud",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw FPS and inference time on the frames",
    )
    g = p.add_argument_group("zones, lines and events (tracking switches on with them)")
    g.add_argument(
        "--zone",
        metavar="NAME:X,Y X,Y X,Y...",
        action="append",
        help="a zone: its polygon in pixels or fractions of the frame (repeatable)",
    )
    g.add_argument(
        "--line",
        metavar="NAME:X1,Y1 X2,Y2",
        action="append",
        help="a counting line from start to end; 'in' crosses from its right to its left",
    )
    g.add_argument(
        "--thresholds", metavar="CLASS=SCORE,...", help="per-class minimum scores, e.g. person=0.6"
    )
    g.add_argument("--min-area", metavar="A", help="smallest box: pixels, or <= 1: frame fraction")
    g.add_argument("--max-area", metavar="A", help="largest box: pixels, or <= 1: frame fraction")
    g.add_argument("--mqtt", metavar="HOST[:PORT]", help="events and counts to an MQTT broker")
    g.add_argument("--webhook", metavar="URL", help="each event as a JSON POST to this URL")
    g.add_argument(
        "--snapshots",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep each object's best snapshot (frame and crop)",
    )
    g.add_argument(
        "--clips",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="an H.264 clip around each zone entry, crossing and loitering",
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

    config = load_config(args.config, overrides_from_args(args))
    run_app(config)
    return 0
