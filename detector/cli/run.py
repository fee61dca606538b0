"""The ``run`` command (the default): flags -> config overrides -> :func:`detector.api.run`."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from typing import Any

from detector.api import run
from detector.config import FLAG_GROUPS, flagged_keys

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

Flags override the config's keys (detector/default.yml documents each one).
Outputs go to a new folder <output>/<name> (never overwritten): annotated.mp4 (H.264),
detections.jsonl (one JSON line per frame), images/, the exports (--coco, --csv, --mot)
and run.json.
Exit codes: 0 ok, 1 runtime error, 2 usage or config error, 130 interrupted.
"""


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
    p.add_argument("--config", metavar="YAML", help="config file (default: the packaged one)")
    add_config_flags(p)
    p.set_defaults(func=handle)


def add_config_flags(
    p: argparse.ArgumentParser, keys: Collection[str] | None = None
) -> dict[str, str]:
    """A flag for every config key that has one (``config.Flag``; only ``keys`` when given),
    in its group.

    Names, choices, help and the bare value all come from the config's fields: one source.
    Values are handed over as strings (the config parses and checks them, so a bad flag gets
    the same message as a bad key). ``overrides_from_args`` reads them back. Returns
    ``{argparse dest: dotted key}``.
    """
    groups = {title: p.add_argument_group(title) for title in FLAG_GROUPS}  # empty ones: hidden
    dests: dict[str, str] = {}
    for k in flagged_keys():
        if keys is not None and k.key not in keys:
            continue
        flag = k.flag
        name = flag.name or k.name.replace("_", "-")
        kwargs: dict[str, Any] = {"help": flag.help, "dest": name.replace("-", "_")}
        if k.switch:
            kwargs.update(action=argparse.BooleanOptionalAction, default=None)
        elif k.choices:
            kwargs["choices"] = k.choices
        else:
            kwargs["metavar"] = flag.metavar
        if flag.const is not None:
            kwargs.update(nargs="?", const=flag.const)
        if flag.repeat:
            kwargs["action"] = "append"
        groups[flag.group].add_argument(f"--{name}", **kwargs)
        dests[kwargs["dest"]] = k.key
    p.set_defaults(config_flags=dests)
    return dests


def overrides_from_args(args: argparse.Namespace) -> dict[str, object]:
    """Config overrides (dotted key → value) for the flags that were given."""
    out: dict[str, object] = {}
    for dest, key in getattr(args, "config_flags", {}).items():
        value = getattr(args, dest, None)
        if value is not None:
            out[key] = "true" if value is True else "false" if value is False else value
    return out


def handle(args: argparse.Namespace) -> int:
    """Handler of ``run``: :func:`detector.api.run` with the config file and flags. Returns 0."""

    overrides: dict[str, Any] = overrides_from_args(args)  # dotted keys, as given
    run(args.config, **overrides)
    return 0
