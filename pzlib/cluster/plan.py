"""The files one stage III array shares between its submitter and its workers, in the array's folder::

    ARRAY_DIR/plan.json                  what to do: the run's params, estimator, model, each task's partitions
    ARRAY_DIR/partitions/NAME.json       per partition: started | done | failed (with the error) | cancelled
    ARRAY_DIR/logs/                      the tasks' stdout and stderr

Workers write the markers; the submitter reads them to explain failures (the outputs themselves are what
decides whether a partition is done). The array folder must be on a filesystem both sides see at the same
path, like the run folder itself. Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ArrayPlan:
    """What an array's workers do."""

    params: dict
    """The run's params (``RunSpec.to_params()``)."""
    estimator: str
    """Estimator of this array."""
    model_path: str
    """Trained model, as stage II returned it."""
    tasks: list[list[str]]
    """Partition paths per task index: each task is one worker process working through its share."""

    @property
    def partitions(self) -> list[str]:
        return [partition for share in self.tasks for partition in share]

    def write(self, array_dir: Path) -> Path:
        path = array_dir / "plan.json"
        write_json(path, asdict(self))
        return path

    @classmethod
    def read(cls, path: Path) -> ArrayPlan:
        return cls(**json.loads(path.read_text()))


def split_shares(partitions: list[str], task_count: int) -> list[list[str]]:
    """``partitions`` in ``task_count`` contiguous shares whose sizes differ by at most one."""
    size, extra = divmod(len(partitions), task_count)
    shares, start = [], 0
    for index in range(task_count):
        end = start + size + (1 if index < extra else 0)
        shares.append(partitions[start:end])
        start = end
    return shares


def partition_marker_path(array_dir: Path, partition_path: str) -> Path:
    return array_dir / "partitions" / f"{Path(partition_path).name}.json"


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
