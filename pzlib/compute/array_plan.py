"""The files one stage III array shares between its submitter (:mod:`pzlib.compute.estimate_array`) and its
workers (:mod:`pzlib.compute.worker`), in the array's folder::

    ARRAY_DIR/plan.json                  what to do: the run's params, estimator, model, each task's partitions
    ARRAY_DIR/partitions/NAME.json       per partition: started | done | failed (with the error) | cancelled
    ARRAY_DIR/logs/                      the tasks' stdout and stderr

Workers write the markers; the submitter reads them to explain failures (the outputs themselves are what
decides whether a partition is done). The array folder must be on a filesystem both sides see at the same
path, like the run folder itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pzlib.cluster.plan import read_json, write_json


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


def partition_marker_path(array_dir: Path, partition_path: str) -> Path:
    return array_dir / "partitions" / f"{Path(partition_path).name}.json"


def array_progress(array_dir: str | Path) -> tuple[int, int]:
    """(partitions of the array, those its workers have marked done so far)."""
    array_dir = Path(array_dir)
    planned = ArrayPlan.read(array_dir / "plan.json").partitions
    markers = [read_json(partition_marker_path(array_dir, path)) or {} for path in planned]
    return len(planned), sum(1 for marker in markers if marker.get("state") == "done")
