"""The documentation's Python examples, as code to run: the blocks and the files they read.

``python tests/api/examples.py README.md "Python API" OUT.py`` writes a section's ``python``
blocks as one script (``.ci/package-check`` runs it with the installed package);
``python tests/api/examples.py --media FOLDER SAMPLES`` puts the files the examples name there:
``dog.jpg`` (a sample photo) and ``clip.mp4`` (the sample video's first frames). A block
right after ``<!-- not run -->`` is left out (it needs a camera or a network stream).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

SKIP_MARK = "<!-- not run -->"
CLIP_FRAMES = 40


def python_blocks(markdown: Path, section: str | None = None) -> list[str]:
    """The ``python`` fenced blocks of ``markdown`` (of one ``##`` section if named), in order."""
    text = markdown.read_text(encoding="utf-8")
    if section is not None:
        match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
        if match is None:
            raise ValueError(f"{markdown}: no section '## {section}'")
        text = match.group(1)
    blocks = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S):
        before = text[: m.start()].rstrip()
        if not before.endswith(SKIP_MARK):
            blocks.append(m.group(1))
    if not blocks:
        raise ValueError(f"{markdown}: no python blocks to run")
    return blocks


def make_media(folder: Path, samples: Path) -> None:
    """``dog.jpg`` and a short ``clip.mp4`` in ``folder``, from the sample media."""
    import cv2

    shutil.copyfile(samples / "photos" / "dog.jpg", folder / "dog.jpg")
    cap = cv2.VideoCapture(str(samples / "vtest.avi"))
    writer = None
    try:
        for _ in range(CLIP_FRAMES):
            ok, image = cap.read()
            if not ok:
                raise RuntimeError(f"cannot read {samples / 'vtest.avi'}")
            if writer is None:
                h, w = image.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                writer = cv2.VideoWriter(str(folder / "clip.mp4"), fourcc, 10.0, (w, h))
            writer.write(image)
    finally:
        cap.release()
        if writer is not None:
            writer.release()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--media"]:
        make_media(Path(argv[1]), Path(argv[2]))
        return 0
    markdown, section, out = argv
    Path(out).write_text("\n".join(python_blocks(Path(markdown), section)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
