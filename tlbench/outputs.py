"""Where tlbench writes (result directories, the cache), checked before anything runs.

A path that cannot hold a directory (a file on the way, no permission, a name too long)
is the user's to fix: one line naming the option and the path, exit code 2, and
nothing written, rather than an error halfway through a suite.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def _show(path: Path) -> str:
    text = str(path)
    return repr(text if len(text) <= 120 else text[:117] + "...")


def check_directory(path: Path | str, what: str) -> Path:
    """Check that `path` can be a directory tlbench writes into. Missing parts are made
    to prove it, then removed again, so a suite that stops before its first run leaves
    nothing behind."""
    path = Path(path).expanduser()
    try:
        too_long = next((part for part in path.parts if len(os.fsencode(part)) > 255), None)
        if too_long is not None:
            raise UserError(f"{what}: {_show(path)}: a name in it is longer than 255 bytes")
        existing = path
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            where = "" if existing == path else f" (on the way to {_show(path)})"
            raise UserError(f"{what}: {_show(existing)} is a file{where}; expected a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UserError(f"{what}: {_show(existing)} is not writable")
        if existing != path:
            path.mkdir(parents=True)
            made = path
            while made != existing:
                made.rmdir()
                made = made.parent
    except OSError as exc:
        raise UserError(f"{what}: {_show(path)} cannot be used as a directory: "
                        f"{exc.strerror or type(exc).__name__}") from None
    return path


def check_not_inside(out: Path | str, inputs: list[Path | str], what: str) -> None:
    """Refuse an output directory inside one of the inputs: its reports and records would
    land among the records being read (inside `runs/`, say). An input itself may be the
    output: merging into a result directory adds records next to its own."""
    target = Path(out).expanduser().resolve()
    for given in inputs:
        source = Path(given).expanduser().resolve()
        if source in target.parents:
            raise UserError(f"{what}: {_show(Path(out))} is inside the input directory {_show(Path(given))}; "
                            f"choose a directory outside every input")
