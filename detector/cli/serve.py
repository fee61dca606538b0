"""The ``serve`` command: the detection service (:mod:`detector.service`) until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse

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

# flag dest -> config key (strings; the config checks them)
_FLAG_KEYS = {
    "model": "model.path",
    "labels": "model.labels",
    "backend": "model.backend",
    "threshold": "detect.threshold",
    "classes": "detect.classes",
    "output": "output.dir",
    "token_file": "serve.token_file",
    "insecure": "serve.insecure",
}


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
    p.add_argument("--model", metavar="PATH", help="frozen .pb, SavedModel or checkpoint")
    p.add_argument("--labels", metavar="PATH", help="label map (.pbtxt, .txt, .json)")
    p.add_argument("--backend", choices=("tf", "openvino"), help="inference backend")
    p.add_argument("--threshold", metavar="T", help="default minimum score (0-1)")
    p.add_argument("--classes", metavar="LIST", help="default classes kept, e.g. person,car")
    p.add_argument("--output", metavar="DIR", help="folder of the sources' run folders")
    p.add_argument("--token-file", metavar="FILE", help="the API token: the file's first line")
    p.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="serve beyond 127.0.0.1 with no API token",
    )
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Handler of ``serve``: runs until Ctrl-C / SIGTERM, then stops cleanly. Returns 0."""
    from detector.service import serve

    overrides: dict[str, object] = {}
    for dest, key in _FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[key] = "true" if value is True else value
    config = load_config(args.config, overrides)
    serve(config, args.host, args.port, sources=args.source)
    return 0
