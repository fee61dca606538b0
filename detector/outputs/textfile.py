"""A text file that is whole at every moment: records appended with their closing tail.

JSON arrays, CSV and line formats are written one record (or one frame's records) at a time.
Each append is one ``pwrite`` that writes the new records *and* the text that closes the
file (``]`` for a JSON array) over the previous tail, so a reader — or a run killed by
SIGKILL or the out-of-memory killer at any instant — finds a complete file: the old one or
the new one, never half a record. A write that fails part-way (a full disk) is rolled back
to the last complete record and its tail, so the file still parses, and the error says so.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from detector.errors import SinkError


class RecordFile:
    """Append-only text whose content plus ``tail`` is a valid file after every append.

    Args:
        path: The file (its folder is created); an existing file is replaced.
        what: What it is, for error messages ("COCO results file").
        head: Text written first (a JSON array's ``[``, a CSV header).
        tail: Text that closes the structure, kept at the end of the file after each append.
    """

    def __init__(self, path: str | Path, what: str, head: str = "", tail: str = "") -> None:
        self.path = Path(path)
        self.what = what
        self._tail = tail.encode("utf-8")
        self._body = 0  # bytes before the tail
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644
            )
        except OSError as exc:
            raise SinkError(f"cannot open {what} '{self.path}': {exc.strerror or exc}") from exc
        self.append(head)

    def append(self, text: str) -> None:
        """Add ``text`` before the tail in one write; on failure the file is left as it was."""
        if self._fd is None:
            raise SinkError(f"{self.what} '{self.path}' is closed")
        body = text.encode("utf-8", "backslashreplace")
        data = body + self._tail
        try:
            written = os.pwrite(self._fd, data, self._body)
            while written < len(data):  # a short write: go on from where it stopped
                n = os.pwrite(self._fd, data[written:], self._body + written)
                if n == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += n
        except OSError as exc:
            self._roll_back()
            raise SinkError(
                f"cannot write to '{self.path}': {exc.strerror or exc} "
                "(the file keeps every record written before)",
                hint="free some disk space or set output.dir (--output) to another disk"
                if exc.errno == errno.ENOSPC
                else "check the folder is writable and the disk is not full",
            ) from exc
        self._body += len(body)

    def _roll_back(self) -> None:
        """Cut the file back to the last complete record and its tail (best effort)."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._body)
            if self._tail:
                os.pwrite(self._fd, self._tail, self._body)
        except OSError:
            pass

    @property
    def size(self) -> int:
        """Bytes in the file, tail included."""
        return self._body + len(self._tail)

    def close(self) -> None:
        """Close the file (idempotent); its content is already whole."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.close(fd)
        except OSError as exc:
            raise SinkError(f"cannot close '{self.path}': {exc.strerror or exc}") from exc
