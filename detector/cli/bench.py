"""The ``bench`` command: pipeline beside bare model, naive loop and TFLite, as a table and JSON."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from detector.benchmarks.report import format_table, summarize
from detector.benchmarks.runner import run_bench
from detector.benchmarks.sections import SECTIONS, BenchOptions, default_sections
from detector.benchmarks.system import warm_frames
from detector.config import Config, choices, load_config
from detector.errors import ConfigError
from detector.model.options import ModelOptions
from detector.paths import CACHE_DIR, SAMPLES_DIR

PHOTOS_DIR = SAMPLES_DIR / "photos"

log = logging.getLogger(__name__)

DEFAULT_TFLITE = "source/mobilenet_ssd_v2_coco_quant_postprocess.tflite"

EPILOG = """\
what it measures, side by side in one run (sample video 576p, and 720p / 1080p videos made
from its frames, cached in .cache/bench/):
  bare model       Session.run on pre-decoded frames: frames/s, ms and CPU-ms per frame
  naive loop       the original's one-thread loop: read -> detect -> draw -> write
  no model         the same loop with the model replaced by fixed boxes (cost of the rest)
  pipeline         our threaded pipeline writing annotated video + JSON lines;
                   also with 1 worker, 2 workers with a session each, detect_every 2 and 4
  model latency    our session vs TFLite's interpreter on the original .tflite, 1 and 2 threads
  live             a source paced at 30 fps, keep-newest: capture-to-output latency, drops
  web              the same live run serving --serve with 0 and 50 viewers (one stalled),
                   paced and flat out: inference fps ratio and p95 latency delta
  memory           RSS after 1,000 vs 10,000 frames
  split            network and post-processing sub-graphs in two threads
  video            the H.264 writer (PyAV) beside OpenCV's mp4v: CPU-ms per frame at 576p
                   and 1080p, end-to-end frames/s with each; OpenCV vs PyAV decoding
  ray              local engine vs --engine ray on folders of 50 and 200 photos, each whole
                   command timed: fixed cost, ms per image, break-even, images/s per actor
                   (full runs, or --only ray; needs the ray extra)
  ray_cameras      2 and 4 MJPEG cameras at 10 FPS on --engine ray, a worker each, on one
                   node vs two of one cluster started here: frames held, p95 latency, worker
                   memory and start-up, driver CPU per camera (full runs, or --only ray_cameras)
  track            every frame of the sample through the model once (reference), then
                   replayed at detect_every 2/4/8: share of reference boxes covered on the
                   frames between model runs, static carrying vs bytetrack and sort; id
                   switches per 100 frames at N=1; tracker CPU-ms per frame (~20 objects)
  backends         tf beside openvino fp32 / bf16 / int8 (and the LiteRT peer): bare model
                   1 / 2 threads, 2 in flight, pipeline end to end, start-up, parity on the
                   sample photos; int8 made (NNCF) and gated on first use, cached in
                   .cache/bench/openvino/ (full runs, or --only backends; needs the extra)
  explain          every explain method on every detection of the photos: peak in the box,
                   heat in the box, ms per detection (only with --only explain; --overlays)
  events           zones + lines + events on 20 tracked objects at 1080p: the stage's CPU per
                   frame; clips from a buffer of encoded frames: RSS along the way (no model)
  serve            `detector serve` in processes of its own, /api/detect on the sample
                   photos from 1, 4 and 16 clients: requests/s, p50 / p95 latency, batched
                   (batch_size 8) vs one at a time, rounds alternating (full runs, or --only serve)
then the ratios (pipeline/bare, pipeline/naive, pipeline/CPU budget, ours/TFLite,
detect_every gains) and each target of docs/PERFORMANCE.md: met, or missed by how much.

examples:
  python main.py bench                        # full run (about 10-15 min on 2 cores)
  python main.py bench --quick                # short run for CI (< 2 min)
  python main.py bench --quick --json runs/bench.json
  python main.py bench --only model,tflite    # just the model latency columns
  python main.py bench --only ray --ray-images 50,200   # local vs Ray engine on photos
  python main.py bench --only track           # tracking coverage, id switches, cost (~1 min)
  python main.py bench --only backends        # the backend column (tf vs openvino)
  python main.py bench --only serve           # the detection service, batched vs not
  python main.py bench --only explain --json runs/explain_bench.json --overlays runs/explain_png
  python main.py bench --workers 1 --intra-op-threads 2
"""


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    p = sub.add_parser(
        "bench",
        parents=parents,
        help="measure the pipeline beside the bare model, the naive loop and TFLite",
        description="Benchmark the detector on this machine; prints a table and writes JSON.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="short run for CI: fewer frames, one repeat, short live and memory runs",
    )
    p.add_argument("--json", metavar="OUT", type=Path, help="also write the results as JSON here")
    p.add_argument(
        "--frames",
        type=int,
        metavar="N",
        help="frames per throughput measurement (default 300, quick 40)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        metavar="R",
        help="repeats per measurement, medians reported (default 3, quick 1)",
    )
    _add_model_flags(p)
    p.add_argument(
        "--memory-frames",
        metavar="A,B",
        help="RSS read after A and after B frames (default 1000,10000; quick 100,600)",
    )
    p.add_argument(
        "--ray-images",
        metavar="A,B",
        help="folder sizes of the local vs Ray runs (default 50,200)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=CACHE_DIR / "bench",
        help="where the made 720p/1080p videos are cached (default .cache/bench)",
    )
    p.set_defaults(func=handle)


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    """The model and media to measure (the config's, with overrides) and the sections."""
    p.add_argument(
        "--config",
        type=Path,
        metavar="YML",
        help="config whose model settings are benchmarked (default: the packaged default.yml)",
    )
    p.add_argument("--model", type=Path, help="model to benchmark (default: the config's)")
    p.add_argument("--labels", type=Path, help="label map (default: the config's)")
    p.add_argument(
        "--tflite",
        type=Path,
        help=f"original .tflite for the TFLite column (default: MODEL_DIR/{DEFAULT_TFLITE})",
    )
    p.add_argument("--video", type=Path, help="the 576p video (default: the sample video)")
    p.add_argument(
        "--sizes",
        default=None,
        metavar="H,H",
        help="heights of the videos made from its frames (default 720,1080)",
    )
    p.add_argument("--only", metavar="LIST", help=f"comma list of: {','.join(SECTIONS)}")
    p.add_argument(
        "--photos",
        type=Path,
        default=PHOTOS_DIR,
        help="photos of the parity and explain sections (default samples/photos)",
    )
    p.add_argument("--overlays", type=Path, metavar="DIR", help="explain: also write PNGs here")
    p.add_argument("--intra-op-threads", type=int, help="override model.intra_op_threads")
    p.add_argument("--inter-op-threads", type=int, help="override model.inter_op_threads")
    p.add_argument("--workers", type=int, help="override model.workers")
    p.add_argument("--backend", choices=choices("model.backend"), help="override model.backend")
    p.add_argument(
        "--precision", choices=choices("model.precision"), help="override model.precision"
    )


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got '{text}'") from None
    if any(v <= 0 for v in vals):
        raise ConfigError(f"{what} must be positive, got '{text}'")
    return vals


def _config(args: argparse.Namespace) -> Config:
    """The config, with the flags as overrides (as ``run`` reads them)."""

    flags = {
        "model.path": args.model,
        "model.labels": args.labels,
        "model.intra_op_threads": args.intra_op_threads,
        "model.inter_op_threads": args.inter_op_threads,
        "model.workers": args.workers,
        "model.backend": args.backend,
        "model.precision": args.precision,
    }
    return load_config(args.config, {k: str(v) for k, v in flags.items() if v is not None})


def handle(args: argparse.Namespace) -> int:
    config = _config(args)
    model = ModelOptions.from_config(config)
    if not model.path.exists():
        raise ConfigError(
            f"model '{model.path}' does not exist",
            hint="run `python main.py fetch`, or pass --model PATH",
        )
    video = args.video or Path(str(config.source.uri))
    if not video.is_file():
        raise ConfigError(
            f"bench video '{video}' does not exist",
            hint="run `python main.py fetch` for the sample video, or pass --video",
        )
    results = summarize(run_bench(_options(args, video, config), model))
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_clean(results), indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


def _sections(args: argparse.Namespace) -> frozenset[str]:
    """``--only``'s sections, checked against the registry; else the run's defaults."""
    if not args.only:
        # a quick run leaves out minutes of Ray runs and of a process per backend
        return frozenset(default_sections(args.quick))
    sections = frozenset(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sections - set(SECTIONS)
    if unknown:
        raise ConfigError(
            f"--only: unknown section(s) {sorted(unknown)}",
            hint=f"choose from {', '.join(SECTIONS)}",
        )
    return sections


def _pair(text: str | None, flag: str, default: tuple[int, int]) -> tuple[int, int]:
    """``A,B`` with ``A < B`` (``default`` when the flag is not given)."""
    vals = _ints(text, flag) if text else default
    if len(vals) != 2 or vals[0] >= vals[1]:
        raise ConfigError(f"{flag} must be A,B with A < B, got {text}")
    return vals[0], vals[1]


def _options(args: argparse.Namespace, video: Path, config: Config) -> BenchOptions:
    quick = args.quick
    frames = args.frames or (40 if quick else 300)
    return BenchOptions(
        video=video,
        sizes=_ints(args.sizes, "--sizes") if args.sizes is not None else (720, 1080),
        frames=frames,
        warmup=warm_frames(5 if quick else 20, frames),
        repeats=args.repeats or (1 if quick else 3),
        live_frames=60 if quick else 300,
        track_frames=200 if quick else None,
        memory_frames=_pair(
            args.memory_frames, "--memory-frames", (100, 600) if quick else (1000, 10000)
        ),
        cache_dir=args.cache_dir,
        sections=_sections(args),
        video_variants=not quick,
        ray_images=_pair(args.ray_images, "--ray-images", (50, 200)),
        photos=args.photos,
        overlays=args.overlays,
        threshold=config.detect.threshold,
        max_boxes=config.detect.max_boxes,
        tflite=args.tflite or config.model.path.parent / DEFAULT_TFLITE,
    )


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN → null, paths → strings."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj
