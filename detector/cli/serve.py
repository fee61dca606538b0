"""The ``serve`` command: the detection service (:mod:`detector.service`) until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse

from detector.cli.run import add_config_flags, overrides_from_args
from detector.config import DEFAULT_SERVE_HOST, load_config

EXAMPLES = """\
examples:
  python main.py serve                              # http://127.0.0.1:8080/ (docs at /docs)
  python main.py serve --port 9000 --source rtsp://cam1/live --source rtsp://cam2/live
  python main.py serve --host 0.0.0.0 --token-file ~/.detector-token
  curl -F image=@samples/photos/dog.jpg http://127.0.0.1:8080/v1/vision/detection
  curl --data-binary @samples/photos/dog.jpg 'http://127.0.0.1:8080/api/detect?threshold=0.6'
  curl -X POST -H 'Content-Type: application/json' -d '{"uri": "samples/vtest.avi"}' \\
       http://127.0.0.1:8080/api/sources

Endpoints: / (live page), /docs (OpenAPI), /v1/vision/detection (DeepStack), /api/detect,
/api/sources, /healthz, /readyz, /metrics (Prometheus). Beyond 127.0.0.1 an API token is
required (serve.token, --token-file or DETECTOR_API_TOKEN) unless --insecure.
Exit codes: 0 stopped (Ctrl-C / SIGTERM), 1 runtime error, 2 usage or config error.
"""

#: The config keys ``serve`` takes flags for (names, help and choices from the config's fields).
_FLAG_KEYS = (
    "model.path",
    "model.labels",
    "model.backend",
    "detect.threshold",
    "detect.classes",
    "output.dir",
    "serve.token_file",
    "serve.insecure",
)


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    """Add the ``serve`` command."""
    p = sub.add_parser(
        "serve",
        parents=parents,
        help="a detection service: DeepStack's HTTP API, health, metrics, run-time sources",
        description="Serve the model over HTTP until Ctrl-C / SIGTERM: DeepStack's "
        "/v1/vision/detection, /api/detect, sources added at run time, the live page, "
        "/healthz, /readyz and Prometheus /metrics.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="YAML", help="config file (configs/default.yml)")
    p.add_argument("--host", default=DEFAULT_SERVE_HOST, help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (8080; 0: a free one)")
    p.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="URI",
        help="a source to start with (repeatable); more with POST /api/sources",
    )
    add_config_flags(p, _FLAG_KEYS)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Handler of ``serve``: runs until Ctrl-C / SIGTERM, then stops cleanly. Returns 0."""
    from detector.service import serve

    config = load_config(args.config, overrides_from_args(args))
    serve(config=config, host=args.host, port=args.port, sources=args.source)
    return 0
