"""A real HTTP receiver for webhook events: it may fail the first tries of each event."""

from __future__ import annotations

import http.server
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class Receiver:
    """Accepts POSTs; the first ``fail_first`` tries of each event get ``status`` (then 200)."""

    def __init__(self, fail_first: int, status: int = 503) -> None:
        self.fail_first = fail_first
        self.status = status
        self.tries: Counter[str] = Counter()
        self.accepted: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()


@contextmanager
def receiving(receiver: Receiver) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            event = json.loads(body)
            with receiver.lock:
                receiver.tries[event["id"]] += 1
                ok = receiver.tries[event["id"]] > receiver.fail_first
                if ok:
                    receiver.accepted.append(event)
                    receiver.headers.append(dict(self.headers))
            self.send_response(200 if ok else receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
