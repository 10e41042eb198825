"""Measuring tools: what the platform costs, side by side with stock RAIL, and what a release will cost.

- :mod:`~pzlib.bench.compare`: ``pz bench``, stock RAIL and our streaming path on the same input and model;
- :mod:`~pzlib.bench.runtime_model`: ``pz bench scaling`` (seconds = a + b·rows per estimator) and ``pz forecast``;
- :mod:`~pzlib.bench.study`: ``pz study``, runtime and photo-z against rows, input rounding, training-set size and
  PDF grid points, ours and stock RAIL side by side;
- :mod:`~pzlib.bench.inputs`: the DC2 validation set tiled to any size, the input of every benchmark;
- the benchmarks of scripts/bench_*.py, each a module here run by that script: :mod:`~pzlib.bench.fastpaths`
  (stock stages vs the fast paths), :mod:`~pzlib.bench.validation` (validation vs estimate),
  :mod:`~pzlib.bench.crossmatch` (the TSM task path vs lsdb), :mod:`~pzlib.bench.cluster` (Slurm submission and
  polling), :mod:`~pzlib.bench.transfer` (delivery to S3 vs an ``upload_file`` loop) and
  :mod:`~pzlib.bench.airflow_tasks` (the local Airflow backend's per-task overhead) and
  :mod:`~pzlib.bench.forecast_check` (``pz forecast`` against a real 120-partition stage III on Slurm).

This is a face of the platform, like the ``pz`` command: nothing else in pzlib imports it.
"""
