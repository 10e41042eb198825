"""Planning job arrays: work items split into one share per task, and the JSON files a submitter and its
workers exchange in an array's folder (on a filesystem both sides see at the same path). Every file is written
under a temporary name and renamed, so a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def split_shares(items: list[str], task_count: int) -> list[list[str]]:
    """``items`` in ``task_count`` contiguous shares whose sizes differ by at most one."""
    size, extra = divmod(len(items), task_count)
    shares, start = [], 0
    for index in range(task_count):
        end = start + size + (1 if index < extra else 0)
        shares.append(items[start:end])
        start = end
    return shares


def read_json(path: Path) -> dict | None:
    """The JSON object at ``path``, or None if it does not exist (yet)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def write_json(path: Path, value: dict) -> None:
    """Write ``value`` to ``path`` atomically (readers see the old or the new file, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as staged:
            os.fchmod(staged.fileno(), 0o644)  # read by the other side, which may run as another account
            json.dump(value, staged, indent=1)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
