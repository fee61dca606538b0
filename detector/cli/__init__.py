"""The command line: ``main`` parses, runs one command and maps errors to exit codes.

One module per command (``run``, ``model``, ``fetch``, ``bench``), each with
``add_parser(subparsers, parents)`` and a handler; :mod:`detector.cli.main` ties them together.
"""

from __future__ import annotations

from detector.cli.main import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, main

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_RUNTIME", "EXIT_USAGE", "main"]
