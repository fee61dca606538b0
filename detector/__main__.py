"""``python -m detector``: the same command line as ``python main.py``."""

from __future__ import annotations

import sys

from detector.cli import main

if __name__ == "__main__":
    sys.exit(main())
