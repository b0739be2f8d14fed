"""Which commit of this repository is checked out, for the records runs leave behind.

    git_revision()                                 # "0fa0df5..." (40 hex digits) or None
    git_revision(short=True, mark_dirty=True)      # "0fa0df5-dirty" with uncommitted changes

Checkpoints (``training.common.run_meta``) and benchmark reports (``benchmarks.machine``)
record it. Only the standard library here: a benchmark that reads the revision must not pay
for importing torch.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git_revision(*, short: bool = False, mark_dirty: bool = False) -> str | None:
    """The checked-out commit of this repository (None outside a git checkout); with
    ``mark_dirty``, "-dirty" appended when tracked files differ from it."""
    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                    timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    revision = git("rev-parse", *(["--short"] if short else []), "HEAD")
    if not revision or not mark_dirty:
        return revision or None
    return revision + ("-dirty" if git("status", "--porcelain", "--untracked-files=no")
                       else "")
