"""How long each stage of a run took, for the provenance of what it publishes.

Every piece of work (stage I, a model, a partition, a catalog) appends one line to ``OUTPUT/timings.jsonl`` when it
ends: ``{"stage": ..., "key": ..., "started": ..., "ended": ...}`` (epoch seconds). Appending one short line is
atomic on a local filesystem, so parallel tasks need no lock, and the cost stays one write per partition however
large the release. A rerun appends again; the last line of a (stage, key) counts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAGES = ("stage_1_acquire", "stage_2_train", "stage_3_estimate", "stage_4_postprocess")


def timings_path(output: str | os.PathLike) -> Path:
    return Path(output) / "timings.jsonl"


@contextmanager
def timed(output: str | os.PathLike, stage: str, key: str) -> Iterator[None]:
    """Record how long the block took, if it ends without an error."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    started = time.time()
    yield
    line = json.dumps({"stage": stage, "key": key, "started": started, "ended": time.time()}) + "\n"
    path = timings_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


def _latest_spans(output: str | os.PathLike) -> dict[tuple[str, str], tuple[float, float]]:
    """(stage, key) → (started, ended) of its last line."""
    path = timings_path(output)
    latest: dict[tuple[str, str], tuple[float, float]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
                latest[(entry["stage"], entry["key"])] = (float(entry["started"]), float(entry["ended"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
    return latest


def estimate_seconds(output: str | os.PathLike, estimator: str) -> float | None:
    """Seconds stage III spent on ``estimator``'s partitions, summed (each partition runs on one core); None when
    none is recorded."""
    spans = [end - start for (stage, key), (start, end) in _latest_spans(output).items()
             if stage == "stage_3_estimate" and key.startswith(f"{estimator}/")]
    return sum(spans) if spans else None


def stage_timings(output: str | os.PathLike) -> dict[str, dict]:
    """Per stage: ``wall_s`` (first start to last end), ``busy_s`` (the pieces' seconds summed) and ``pieces``."""
    latest = _latest_spans(output)
    summary = {}
    for stage in STAGES:
        spans = [span for (name, _), span in latest.items() if name == stage]
        if spans:
            summary[stage] = {"wall_s": round(max(end for _, end in spans) - min(start for start, _ in spans), 3),
                              "busy_s": round(sum(end - start for start, end in spans), 3), "pieces": len(spans)}
    return summary
