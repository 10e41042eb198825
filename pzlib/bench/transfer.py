"""Delivery to S3: ``pzlib.storage.transfer.deliver`` against a plain one-file-at-a-time ``upload_file`` loop.

The input is a generated folder shaped like a HATS catalog's data (``--files`` files of ``--min-mib`` to
``--max-mib`` MiB of random bytes, sizes drawn from a fixed seed), built once into ``var/bench/transfer`` and
reused. The destination is a local moto S3 server started by this script in its own process. Both paths copy
the whole folder to an empty prefix of the same bucket, one after the other, ``--repeats`` times in alternating
order; each copy is removed after it is timed:

- **loop**: ``client.upload_file(path, bucket, key)`` for each file in turn, what a script writes first
  (boto3's default transfer config: files of 8 MiB or more in parallel parts, one file at a time);
- **deliver**: the whole of ``deliver`` with the folder's manifest: destination checks, listing, each file
  hashed before it goes, files and parts in parallel (``--concurrency``), verification (list + HEAD) and the
  manifest upload.

The manifest is built once beforehand and timed apart (it reads every file). MB/s is 10^6 bytes of the folder
per second of wall time; the ratio is the median of the per-repeat ratios deliver/loop. A rerun of ``deliver``
onto a complete copy (nothing to copy: list, HEADs, compare) is timed too.

Usage::

    .venv/bin/python scripts/bench_transfer.py [--files 24] [--min-mib 4] [--max-mib 16] [--repeats 3]
                                               [--concurrency 8] [--part-mib 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
from botocore.config import Config

from pzlib.config import load_settings
from pzlib.storage.transfer import build_manifest, deliver

MIB = 1024 * 1024


def make_folder(folder: Path, files: int, min_mib: int, max_mib: int, seed: int) -> Path:
    """``files`` files of random bytes under nested partition folders; kept and reused when already complete."""
    sizes = [random.Random(seed + index).randint(min_mib * MIB, max_mib * MIB) for index in range(files)]
    paths = [folder / f"dataset/Norder=3/Dir=0/Npix={index}.parquet" for index in range(files)]
    for path, size in zip(paths, sizes, strict=True):
        if not path.is_file() or path.stat().st_size != size:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(size))
    return folder


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server in its own process on a free port of 127.0.0.1; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def remove_prefix(client, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix/`` so that the next copy starts empty and moto's memory stays small."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
    keys = [{"Key": listed["Key"]} for page in pages for listed in page.get("Contents", [])]
    for start in range(0, len(keys), 1000):
        client.delete_objects(Bucket=bucket, Delete={"Objects": keys[start:start + 1000], "Quiet": True})


def upload_loop(folder: Path, client, bucket: str, prefix: str) -> None:
    """One ``upload_file`` after the other, boto3's defaults."""
    for path in sorted(path for path in folder.rglob("*") if path.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--min-mib", type=int, default=4)
    parser.add_argument("--max-mib", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--workdir", type=Path, default=load_settings().state_dir / "bench" / "transfer")
    options = parser.parse_args(argv)
    if options.files < 1 or not 0 < options.min_mib <= options.max_mib or options.repeats < 1:
        parser.error("give --files ≥ 1, 0 < --min-mib ≤ --max-mib and --repeats ≥ 1")

    folder = make_folder(options.workdir / f"folder-{options.files}x{options.min_mib}-{options.max_mib}MiB-"
                                           f"seed{options.seed}", options.files, options.min_mib, options.max_mib,
                         options.seed)
    started = time.perf_counter()
    manifest = build_manifest(folder, label="bench")
    manifest_seconds = time.perf_counter() - started
    megabytes = manifest.total_bytes / 1e6
    print(f"folder: {len(manifest.files)} files, {megabytes:,.1f} MB; manifest (SHA-256 of every file) "
          f"{manifest_seconds:.2f} s")

    with moto_server() as endpoint:
        client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=max(10, options.concurrency + 2)),
        )
        bucket = "pz-bench-transfer"
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="warm-up", Body=b"x")

        def run_loop(prefix: str) -> float:
            started = time.perf_counter()
            upload_loop(folder, client, bucket, prefix)
            return time.perf_counter() - started

        def run_deliver(prefix: str) -> float:
            result = deliver(folder, client, bucket, prefix, manifest, max_concurrency=options.concurrency,
                             part_size=options.part_mib * MIB)
            if result.copied_bytes != manifest.total_bytes:
                raise RuntimeError(f"deliver to an empty prefix copied {result.copied_bytes} bytes, not all")
            return result.seconds

        seconds: dict[str, list[float]] = {"loop": [], "deliver": []}
        rerun_seconds = []
        for repeat in range(options.repeats):
            order = ("loop", "deliver") if repeat % 2 == 0 else ("deliver", "loop")
            for path in order:
                prefix = f"{path}-{repeat}"
                seconds[path].append(run_loop(prefix) if path == "loop" else run_deliver(prefix))
                if path == "deliver":
                    rerun = deliver(folder, client, bucket, prefix, manifest, max_concurrency=options.concurrency,
                                    part_size=options.part_mib * MIB)
                    if rerun.copied_keys:
                        raise RuntimeError(f"a rerun onto a complete copy copied {rerun.copied_keys}")
                    rerun_seconds.append(rerun.seconds)
                remove_prefix(client, bucket, prefix)

    rates = {path: [megabytes / value for value in values] for path, values in seconds.items()}
    ratio = statistics.median(d / loop for d, loop in zip(rates["deliver"], rates["loop"], strict=True))
    for path, label in (("loop", "upload_file loop"), ("deliver", "deliver         ")):
        print(f"{label}: {statistics.median(rates[path]):7.1f} MB/s median   (runs: "
              f"{', '.join(f'{value:.2f} s' for value in seconds[path])})")
    print(f"ratio      : deliver / loop = {ratio:.2f}× (median of {options.repeats} side-by-side ratios; "
          f"concurrency {options.concurrency}, {options.part_mib} MiB parts)")
    print(f"rerun      : {statistics.median(rerun_seconds):.2f} s to find nothing to copy (list + "
          f"{len(manifest.files)} HEADs, twice)")
    figures = {
        "files": len(manifest.files), "bytes": manifest.total_bytes, "concurrency": options.concurrency,
        "part_mib": options.part_mib, "repeats": options.repeats, "manifest_s": round(manifest_seconds, 3),
        "runs_s": {path: [round(value, 3) for value in values] for path, values in seconds.items()},
        "loop_mb_per_s": round(statistics.median(rates["loop"]), 1),
        "deliver_mb_per_s": round(statistics.median(rates["deliver"]), 1),
        "ratio": round(ratio, 3), "rerun_s": round(statistics.median(rerun_seconds), 3),
    }
    print("BENCH_TRANSFER " + json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
