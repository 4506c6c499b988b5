"""Errors a user can act on: every message names the file, the problem and the fix."""

from __future__ import annotations

from pathlib import Path


class LocScaleInputError(ValueError):
    """Bad input: a file or parameter the user must change.

    The message always has three parts so the command line can print it as-is::

        <file>: <problem>
          fix: <what to do>
    """

    def __init__(self, problem: str, fix: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem}\n  fix: {fix}")
