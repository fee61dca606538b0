"""Command line: subcommands, logging set-up and exit codes.

``python main.py [run flags]`` runs the detection app (``run`` is the default
command); ``model``, ``fetch``, ``bench`` and ``explain`` are the other commands. Each command's
module adds its own parser through an ``add_parser(subparsers, parents)`` function and
sets ``func`` to a handler ``(args) -> int``. Handlers import TensorFlow lazily, so
``--help`` stays fast.

Exit codes: 0 success, 1 runtime error, 2 usage or config error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import cv2

from detector import __version__
from detector.cli import bench, explain, fetch, model, run, serve
from detector.errors import DetectorError
from detector.pipeline.signals import StopSignals

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

COMMANDS = ("run", "serve", "model", "fetch", "bench", "explain")

EPILOG = """\
commands:
  run      (default) detect objects in a video, webcam, stream or image folder
  serve    a detection service: DeepStack's HTTP API, health, metrics, sources at run time
  model    inspect, freeze, export weights, unfreeze, convert model files
  fetch    download and convert the default model and the sample media (idempotent)
  bench    measure the pipeline beside the bare model, the naive loop and TFLite
  explain  heat maps of where the model looked for each detection (PNG + JSON)

examples:
  python main.py                              # default config: sample video -> runs/
  python main.py --source 0 --show            # webcam 0 in a window
  python main.py --source samples/photos/     # a folder of photos
  python main.py run --help                   # every run flag
  python main.py serve --port 8080            # detection API on http://127.0.0.1:8080/
  python main.py explain samples/photos/dog.jpg   # heat map per detection
  python main.py model inspect models/ssd_mobilenet_v2_coco/frozen_inference_graph.pb
"""


class Parser(argparse.ArgumentParser):
    """argparse with whole flags only (``--sourc`` is an error, not ``--source``) and a
    did-you-mean for a mistyped flag; every sub-parser of the tree is one of these."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            known = sorted(_long_flags(self))
            hints = []
            for word in message[len(prefix) :].split():
                flag = word.split("=", 1)[0]
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
                if flag.startswith("-") and close:
                    hints.append(f"{flag}: did you mean {close[0]}?")
            if hints:
                message += " (" + "; ".join(hints) + ")"
        super().error(message)


def _long_flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every ``--flag`` of ``parser`` and its sub-parsers (argparse reports a sub-command's
    unknown flags from the top parser)."""
    flags: set[str] = set()
    for action in parser._actions:
        flags.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                flags |= _long_flags(sub)
    return flags


def _common_parent() -> argparse.ArgumentParser:
    parent = Parser(add_help=False)
    group = parent.add_argument_group("logging")
    group.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    group.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    group.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parent


def _prog() -> str:
    """``main.py``, ``detector`` or ``python -m detector``: however the user started us."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "detector"
    return "python -m detector" if name == "__main__.py" else name


def build_parser() -> argparse.ArgumentParser:
    """The full parser tree; each command module adds its own sub-parser."""
    parent = _common_parent()
    parser = Parser(
        prog=_prog(),
        description="Real-time object detection on TensorFlow frozen graphs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in (run, serve, model, fetch, bench, explain):
        command.add_parser(sub, [parent])
    return parser


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Configure the root logger once, for the CLI only (the library never does)."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    quiet_third_party(verbose)


def quiet_third_party(verbose: bool = False) -> None:
    """Keep OpenCV's, FFmpeg's and TensorFlow's own log lines from coming before ours.

    Set before a handler uses them (they read these once, at import or first use); a
    value the user set is kept. OpenCV is imported with the commands' modules, before this
    runs, so its level is also set through its own call. ``--verbose`` lets OpenCV and
    FFmpeg warnings through.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not verbose:
        os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")  # our errors say what failed
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
        if os.environ["OPENCV_LOG_LEVEL"].upper() in ("OFF", "SILENT", "0"):
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet", "--debug")
"""The logging flags every command takes; also accepted before the command (``-q run``)."""


def _with_default_command(argv: list[str]) -> list[str]:
    lead = 0
    while lead < len(argv) and argv[lead] in GLOBAL_FLAGS:
        lead += 1
    if lead and lead < len(argv) and argv[lead] in COMMANDS:  # detector -q model inspect ...
        return [argv[lead], *argv[:lead], *argv[lead + 1 :]]
    if argv and (argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version")):
        return argv
    if argv and not argv[0].startswith("-"):  # run takes flags only: a mistyped command
        word = argv[0]
        close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
        if close:
            hint = f"did you mean '{close[0]}'?"
        elif os.path.exists(word) or "/" in word or "." in word or "://" in word:
            hint = f"to detect objects in it: --source {word}"
        else:
            hint = f"the commands are {', '.join(COMMANDS)}"
        build_parser().error(f"unknown command '{word}': {hint}")
    return ["run", *argv]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the chosen command, and map errors to exit codes."""
    args_list = _with_default_command(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    setup_logging(args.verbose, args.quiet)
    try:
        # From here a SIGTERM is a clean stop (exit 130) like Ctrl-C, also during start-up.
        with StopSignals().installed():
            return int(args.func(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DetectorError as exc:
        if args.debug:
            logging.getLogger(__name__).exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # an unexpected bug: say so, keep the traceback behind --debug
        if args.debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        print("hint: run again with --debug for the traceback", file=sys.stderr)
        return EXIT_RUNTIME
