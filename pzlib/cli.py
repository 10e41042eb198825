"""The ``pz`` command: every stage runnable by hand, with progress bars and a one-line summary.

``pz run --train TRAIN --input INPUT --estimator fzboost --output OUT`` is the whole job; ``pz preprocess``,
``pz train`` and ``pz estimate`` run one stage; ``pz bench`` compares our path with stock RAIL; ``pz bench scaling``
and ``pz forecast`` measure and use the runtime model; ``pz summary`` shows a finished run's tables and metrics.
Errors print one line naming the file, the column and the problem, and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pzlib.config import BACKENDS
from pzlib.estimate import BUILTIN_ESTIMATORS

console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def _summary(rows: int, seconds: float, where: str | Path) -> str:
    rate = rows / seconds if seconds > 0 else float("inf")
    return f"{rows:,} rows, {rate:,.0f} objects/s, {seconds:.1f} s → {where}"


def cmd_preprocess(args: argparse.Namespace) -> None:
    from pzlib.catalog import open_catalog
    from pzlib.preprocess import PreprocessConfig, preprocess

    config = PreprocessConfig(columns=args.columns, partition_rows=args.partition_rows, deredden=args.deredden,
                              round_decimals=args.round, filters=args.filter or [], keep_columns=args.keep or [],
                              sentinel=args.sentinel)
    total = open_catalog(args.input).num_rows
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("stage I", total=total)
        partitions = preprocess(args.input, args.output, config, lambda n: progress.advance(task, n))
    import pyarrow.parquet as pq

    rows = sum(pq.read_metadata(p).num_rows for p in partitions)
    print(f"preprocess: {len(partitions)} partition(s), " + _summary(rows, time.perf_counter() - started,
                                                                    args.output))


def cmd_train(args: argparse.Namespace) -> None:
    from pzlib.estimate import EstimateConfig, train
    from pzlib.preprocess import PreprocessConfig

    config = EstimateConfig(args.estimator, truth_column=args.truth_column)
    started = time.perf_counter()
    with console.status(f"training {args.estimator} on {args.train}"):
        model = train(args.train, args.model, config, PreprocessConfig(columns=args.columns))
    print(f"train: {args.estimator} model in {time.perf_counter() - started:.1f} s → {model}")


def cmd_estimate(args: argparse.Namespace) -> None:
    """Any catalog → photo-z table: stage I cleaning and estimation streamed batch by batch."""
    from pzlib.catalog import open_catalog
    from pzlib.estimate import EstimateConfig, PartitionEstimator, estimate_partition
    from pzlib.preprocess import PreprocessConfig

    estimator = PartitionEstimator(args.model, EstimateConfig(args.estimator, batch_rows=args.batch_rows))
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task(f"estimate {args.estimator}", total=open_catalog(args.input).num_rows)
        estimate_partition(args.input, args.output, estimator, lambda n: progress.advance(task, n),
                           cleaning=PreprocessConfig(columns=args.columns))
    import pyarrow.parquet as pq

    rows = pq.read_metadata(args.output).num_rows
    print("estimate: " + _summary(rows, time.perf_counter() - started, args.output))


def _export_table(catalog: Path, output: Path, catalog_format: str, rows_per_file: int = 1_000_000) -> None:
    """Put the photo-z catalog at ``output``: one Parquet file (``*.parquet``); else a folder: the HATS catalog
    itself (the input had sky positions: ``lsdb.open_catalog`` reads it) or a folder of Parquet files."""
    from pzlib.catalog import AtomicParquetWriter, check_writable, copy_folder_atomically, open_catalog
    from pzlib.estimate import PHOTOZ_DICTIONARY_COLUMNS

    if catalog_format == "hats" and output.suffix not in (".parquet", ".pq"):
        copy_folder_atomically(catalog, output)
        return
    reader = open_catalog(catalog)
    # HATS partition bookkeeping columns mean nothing outside a HATS folder.
    columns = [c for c in reader.column_names if c not in ("Norder", "Dir", "Npix")]
    schema = pa.schema([reader.schema.field(c) for c in columns], metadata=reader.schema.metadata)
    dictionary_columns = [c for c in PHOTOZ_DICTIONARY_COLUMNS if c in columns]
    if output.suffix in (".parquet", ".pq"):
        with AtomicParquetWriter(output, schema, dictionary_columns=dictionary_columns) as writer:
            for batch in reader.iter_batches(columns):
                writer.write(batch.replace_schema_metadata(schema.metadata))
        return
    check_writable(output)
    staging = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    writer = None
    for batch in reader.iter_batches(columns):
        if writer is None or writer.num_rows >= rows_per_file:
            if writer is not None:
                writer.commit()
            writer = AtomicParquetWriter(staging / f"part-{len(list(staging.iterdir())):05d}.parquet", schema,
                                         dictionary_columns=dictionary_columns)
        writer.write(batch.replace_schema_metadata(schema.metadata))
    writer.commit()
    if output.exists():
        shutil.rmtree(output)
    os.replace(staging, output)


def cmd_run(args: argparse.Namespace) -> None:
    from pzlib.catalog import check_writable
    from pzlib.compute.spec import RunSpec

    output = Path(args.output)
    check_writable(output)
    workdir = Path(args.workdir) if args.workdir else output.with_name(f".{output.name}.pzwork")
    spec = RunSpec(release=args.release, input=str(args.input), train=str(args.train),
                            output=str(workdir), estimators=[args.estimator], column_map=args.columns,
                            partition_rows=args.partition_rows, truth_column=args.truth_column)
    started = time.perf_counter()
    results = _run_with_progress(spec, args.workers)
    result = results[args.estimator]
    _export_table(Path(result["catalog"]), output, result["format"])
    line = "run: " + _summary(result["n_rows"], time.perf_counter() - started, output)
    if result["metrics"]:
        line += "  |  " + _metrics_line(result["metrics"])
    print(line)


def _metrics_line(metrics: dict) -> str:
    return (f"σ_NMAD {metrics['sigma_nmad']:.4f}, outliers {100 * metrics['outlier_rate']:.1f}%, "
            f"bias {metrics['bias']:+.4f}")


def _run_with_progress(spec, workers: int | None) -> dict:
    from pzlib.catalog import open_catalog
    from pzlib.compute.acquire import acquire
    from pzlib.compute.assemble import assemble
    from pzlib.compute.run import estimate_here
    from pzlib.compute.train import train_model
    from pzlib.config import load_settings
    from pzlib.storage.s3_access import S3Access

    workers = workers or os.cpu_count() or 1
    s3 = S3Access.from_settings(load_settings())  # s3:// inputs: endpoint and keys from PZ_S3_*, never the params
    open_catalog(spec.train, s3=s3)  # both catalogs checked (and a URL's store reached) before any work
    with _progress() as progress:
        stage1 = progress.add_task("stage I    acquire", total=open_catalog(spec.input, s3=s3).num_rows)
        partitions = acquire(spec, lambda n: progress.advance(stage1, n), s3=s3)
        results = {}
        for estimator in spec.estimators:
            training = progress.add_task(f"stage II   train {estimator}", total=1)
            model_path = train_model(spec, estimator, s3=s3)
            progress.advance(training)
            stage3 = progress.add_task(f"stage III  estimate {estimator}", total=len(partitions))
            outputs = estimate_here(spec, estimator, str(model_path), partitions, workers,
                                    on_progress=lambda done, task=stage3: progress.update(task, completed=done))
            results[estimator] = assemble(spec, estimator, outputs)
    return results


def cmd_summary(args: argparse.Namespace) -> None:
    """Where a run's photo-z tables are, and their metrics against the true redshifts."""
    run_dir = Path(args.run_dir)
    summaries = sorted(run_dir.glob("*/metrics.json"))
    if not summaries:
        raise FileNotFoundError(f"{run_dir}: no finished run here (no */metrics.json)")
    for path in summaries:
        result = json.loads(path.read_text())
        if "comparison" in result:  # stage IV's side-by-side report of a run of several estimators
            print(f"  {len(result['comparison'])} estimators compared side by side → {path.parent}")
            continue
        print(f"  {result['estimator']:8s} {result['n_rows']:,} objects → {result['catalog']} ({result['format']})")
        if result["metrics"]:
            print(f"  {'':8s} vs true redshifts: {_metrics_line(result['metrics'])}")


def cmd_bench(args: argparse.Namespace) -> None:
    from pzlib.bench import compare

    report = compare.run_benchmark(args.estimator, rows=args.rows, workdir=Path(args.workdir),
                                 batch_rows=args.batch_rows, repeats=args.repeats, cores=args.cores)
    print(compare.format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


def cmd_study(args: argparse.Namespace) -> None:
    """Runtime and photo-z against rows, input rounding, training-set size and PDF grid, ours and stock RAIL."""
    from pzlib.bench import runtime_model, study

    config = study.StudyConfig(
        estimator=args.estimator, engines=tuple(part.strip() for part in args.engines.split(",") if part.strip()),
        rows=study.parse_counts(args.rows, "--rows"), decimals=study.parse_decimals(args.decimals),
        training_sizes=study.parse_counts(args.training_sizes, "--training-sizes"),
        grid_points=study.parse_counts(args.grid_points, "--grid-points"),
        sample_rows=runtime_model.parse_count(args.sample_rows, "--sample-rows"), repeats=args.repeats,
        workdir=Path(args.workdir), output=args.output, train=args.train, input=args.input,
        batch_rows=args.batch_rows,
    )
    with _progress() as progress:
        task = progress.add_task(f"study {args.estimator}", total=config.steps())
        files = study.run_study(config, lambda _: progress.advance(task))
    print(f"study: {len(files)} files → {config.output}")


def _stdout_console() -> Console:
    # Captured or piped output gets a width that fits the tables, not rich's 80-column fallback.
    return Console(width=None if sys.stdout.isatty() else 120)


def cmd_bench_scaling(args: argparse.Namespace) -> None:
    """Time our engine at several sizes per estimator, fit a + b·rows, save the figures for ``pz forecast``."""
    from pzlib.bench import runtime_model

    config = runtime_model.ScalingConfig(estimators=tuple(args.estimator or runtime_model.SCALING_ESTIMATORS),
                                         sizes=runtime_model.parse_sizes(args.sizes) if args.sizes else None,
                                         workdir=Path(args.workdir),
                                         batch_rows=args.batch_rows)
    scaling_file = Path(args.scaling_file)
    # Read before measuring: an unreadable file fails now, not after minutes of runs.
    earlier = runtime_model.load_scaling(scaling_file) if scaling_file.exists() else runtime_model.ScalingResult({})
    with _progress() as progress:
        task = progress.add_task("bench scaling", total=sum(len(config.sizes_for(name)) for name in config.estimators))
        result = runtime_model.measure_scaling(config, lambda *_: progress.advance(task))
    runtime_model.save_scaling(result.merged_into(earlier), scaling_file)
    output = _stdout_console()
    for table in runtime_model.scaling_tables(result):
        output.print(table)
    output.print(f"saved → {scaling_file}", highlight=False)


def cmd_forecast(args: argparse.Namespace) -> None:
    """Wall time and storage of stage III for N objects on C cores, from ``pz bench scaling``'s figures."""
    from pzlib.bench import runtime_model

    config = runtime_model.ForecastConfig(
        objects=runtime_model.parse_count(args.objects, "--objects"),
        cores=runtime_model.parse_count(args.cores, "--cores"),
        partition_rows=runtime_model.parse_count(args.partition_rows, "--partition-rows"),
        backend=args.backend, overhead_s_per_partition=args.overhead_s_per_partition,
        estimators=tuple(args.estimator) if args.estimator else None,
    )
    result = runtime_model.forecast(runtime_model.load_scaling(args.scaling_file), config,
                                    runtime_model.load_overheads(args.overhead_file))
    output = _stdout_console()
    output.print(runtime_model.forecast_table(result))
    for line in runtime_model.forecast_notes(result):
        output.print(f"  {line}", highlight=False)
    if args.json:
        Path(args.json).write_text(json.dumps(result.as_dict(), indent=1))


def cmd_token(args: argparse.Namespace) -> None:
    """Print a new PZ Server API token for a user, creating the user (or making it an admin) when asked."""
    from pzlib.config import load_settings
    from pzlib.registry import NotFound, Registry

    registry = Registry(load_settings().resolved_database_url)
    try:
        user = registry.get_user(args.username)
        if args.admin and not user.is_admin:
            registry.update_user(user.id, is_admin=True)
    except NotFound:
        registry.create_user(args.username, is_admin=args.admin)
    print(registry.create_token(args.username, label=args.label))


def cmd_release(args: argparse.Namespace) -> None:
    """Register a data release, or change one: names, visibility, and the object catalog the Training Set Maker
    cross-matches with (checked to be a HATS catalog, its column map to be valid, before anything is stored)."""
    from pzlib.config import load_settings
    from pzlib.registry import UNSET, NotFound, Registry

    column_map = UNSET
    if args.column_map is not None:
        column_map = json.loads(args.column_map) if args.column_map.lstrip().startswith("{") else args.column_map
        from pzlib.column_maps import column_map as check_column_map

        check_column_map(column_map)
    if args.object_catalog is not None:
        from pzlib.crossmatch.tsm import open_object_catalog

        args.object_catalog = open_object_catalog(args.object_catalog).path
    registry = Registry(load_settings().resolved_database_url)
    catalog = {} if args.object_catalog is None else {"object_catalog": args.object_catalog}
    if column_map is not UNSET:
        catalog["object_column_map"] = column_map
    try:
        release = registry.update_release(args.name, display_name=args.display_name, description=args.description,
                                          is_public=args.public, access_groups=args.group, **catalog)
    except NotFound:
        release = registry.create_release(args.name, args.display_name or args.name, description=args.description or "",
                                          is_public=bool(args.public), access_groups=args.group or (), **catalog)
    print(json.dumps({"id": release.id, "name": release.name, "is_public": release.is_public,
                      "object_catalog": release.object_catalog, "object_column_map": release.object_column_map}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pz", description="pz-platform: photo-z production with RAIL.")
    commands = parser.add_subparsers(dest="command", required=True)

    def columns_option(command):
        command.add_argument("--columns", default="lsst_mag",
                             help="column map preset: lsst_mag, dm_cmodel, dm_gaap (default: lsst_mag)")

    def estimator_option(command):
        command.add_argument("--estimator", required=True,
                             help="fzboost, bpz, or an installed RAIL estimator class name")

    pre = commands.add_parser("preprocess", help="stage I: clean, column-map and partition a catalog")
    pre.add_argument("input")
    pre.add_argument("output", help="folder for the partitions")
    columns_option(pre)
    pre.add_argument("--partition-rows", type=int, default=150_000)
    pre.add_argument("--deredden", action="store_true", help="SFD dereddening from the map's E(B-V) column")
    pre.add_argument("--round", type=int, default=None, metavar="N", help="round magnitudes to N decimals")
    pre.add_argument("--filter", action="append", metavar="EXPR", help="row filter, e.g. 'mag_i_lsst < 25.3'")
    pre.add_argument("--keep", action="append", metavar="COLUMN", help="input column copied through")
    pre.add_argument("--sentinel", type=float, default=99.0, help="non-detection magnitude (default 99)")
    pre.set_defaults(func=cmd_preprocess)

    tr = commands.add_parser("train", help="stage II: train an estimator with RAIL")
    tr.add_argument("--train", required=True, help="training catalog with true redshifts")
    estimator_option(tr)
    tr.add_argument("--model", required=True, help="where to write the model (.pkl)")
    tr.add_argument("--truth-column", default="redshift")
    columns_option(tr)
    tr.set_defaults(func=cmd_train)

    es = commands.add_parser("estimate", help="stage III: photo-z of a catalog with a trained model")
    es.add_argument("--model", required=True)
    estimator_option(es)
    es.add_argument("--input", required=True)
    es.add_argument("--output", required=True, help="photo-z Parquet file")
    es.add_argument("--batch-rows", type=int, default=None,
                    help="rows per record batch (default: the estimator's own, 50,000 or 10,000 for dnf, knn)")
    columns_option(es)
    es.set_defaults(func=cmd_estimate)

    rn = commands.add_parser("run", help="all stages: train, clean, estimate, assemble")
    rn.add_argument("--train", required=True)
    rn.add_argument("--input", required=True,
                    help="input catalog: a local path, s3://bucket/key.parquet, s3://bucket/prefix/ or an https:// "
                         "HATS URL")
    estimator_option(rn)
    rn.add_argument("--output", required=True,
                    help="photo-z table: a .parquet file, or a folder: the HATS catalog when the input has sky "
                         "positions, else a Parquet dataset")
    rn.add_argument("--workdir", help="run folder for intermediate outputs (default: hidden sibling of OUTPUT)")
    rn.add_argument("--release", default="adhoc")
    rn.add_argument("--partition-rows", type=int, default=150_000)
    rn.add_argument("--truth-column", default="redshift",
                    help="true-redshift column of the input, for metrics (ignored when absent)")
    rn.add_argument("--workers", type=int, default=None, help="stage III processes (default: CPU count)")
    columns_option(rn)
    rn.set_defaults(func=cmd_run)

    be = commands.add_parser("bench", help="stock RAIL vs our path on the same input, side by side")
    be.add_argument("--estimator", default="fzboost", choices=list(BUILTIN_ESTIMATORS))
    be.add_argument("--rows", type=int, default=None, help="rows (DC2 validation set tiled; default: 20,449)")
    be.add_argument("--batch-rows", type=int, default=None, help="rows per record batch (default: the estimator's own)")
    be.add_argument("--repeats", type=int, default=2,
                    help="interleaved runs per side; each side keeps its best stream (default: 2)")
    be.add_argument("--cores", type=int, default=2,
                    help="also run ours on the rows split in N partitions: 1 worker vs N workers (<=1: skip)")
    be.add_argument("--workdir", default="var/bench")
    be.add_argument("--json", help="also write the figures to this JSON file")
    be.set_defaults(func=cmd_bench)
    # `pz bench scaling ...`; plain `pz bench [options]` stays the side-by-side comparison above.
    be_commands = be.add_subparsers(dest="bench_command", metavar="{scaling}")
    sc = be_commands.add_parser("scaling", help="time our engine at 1e4 … 1e6 rows, fit seconds = a + b·rows")
    sc.add_argument("--estimator", action="append", choices=list(BUILTIN_ESTIMATORS),
                    help="estimator to measure; repeat for several (default: bpz and fzboost)")
    sc.add_argument("--sizes", default=None,
                    help="comma-separated rows per run (DC2 validation set tiled; default: 1e4,3e4,1e5,3e5,1e6 for "
                         "bpz and fzboost, 2e3,5e3,2e4,5e4 for estimators running RAIL's own stage)")
    sc.add_argument("--batch-rows", type=int, default=None, help="rows per record batch (default: the estimator's own)")
    sc.add_argument("--workdir", default="var/bench", help="models, tiled inputs (kept) and temporary outputs")
    sc.add_argument("--scaling-file", default="var/bench/scaling.json",
                    help="JSON file for the figures; other estimators already in it are kept")
    sc.set_defaults(func=cmd_bench_scaling)

    st = commands.add_parser("study", help="runtime and photo-z against rows, input rounding, training-set size and "
                                           "PDF grid points, ours and stock RAIL side by side (report folder)")
    st.add_argument("--estimator", default="fzboost", help="estimator short name (default: fzboost)")
    st.add_argument("--engines", default="ours,rail", help="comma-separated: ours, rail (default: both)")
    st.add_argument("--rows", default="2e3,2e4", help="rows axis, besides --sample-rows (default: 2e3,2e4)")
    st.add_argument("--decimals", default="3,2,1",
                    help="rounding axis: decimals of magnitudes and errors, besides unrounded (default: 3,2,1)")
    st.add_argument("--training-sizes", default="1000,3000",
                    help="training-set axis: rows drawn from the training set, besides all (default: 1000,3000)")
    st.add_argument("--grid-points", default="101,201,601",
                    help="PDF grid axis (nzbins), besides the estimator's own (default: 101,201,601)")
    st.add_argument("--sample-rows", default="5000", help="rows of the unchanged setting and the other axes' runs")
    st.add_argument("--repeats", type=int, default=2, help="timed runs per setting and engine; the best counts")
    st.add_argument("--train", help="training catalog (default: RAIL's DC2 training sample)")
    st.add_argument("--input", help="catalog to estimate, lsst_mag columns (default: RAIL's DC2 validation sample)")
    st.add_argument("--batch-rows", type=int, default=None, help="rows per record batch (default: the estimator's)")
    st.add_argument("--workdir", default="var/study", help="trained models and training subsets")
    st.add_argument("--output", help="report folder, replaced (default: WORKDIR/ESTIMATOR); an empty axis is skipped")
    st.set_defaults(func=cmd_study)

    fc = commands.add_parser("forecast", help="wall time and storage for N objects on C cores (pz bench scaling)")
    fc.add_argument("--objects", required=True, help="objects in the release, e.g. 20e9")
    fc.add_argument("--cores", required=True, help="cores running stage III at once, e.g. 2032")
    fc.add_argument("--partition-rows", default="150000", help="rows per partition (default: 150000, as stage I)")
    fc.add_argument("--backend", default="slurm", choices=BACKENDS,
                    help="whose measured per-partition overhead to use: slurm (scripts/bench_cluster.py) or local "
                         "Airflow tasks (scripts/bench_airflow_tasks.py, saved in --overhead-file); default: slurm")
    fc.add_argument("--overhead-s-per-partition", type=float, default=None, metavar="SECONDS",
                    help="orchestration seconds per partition, instead of the backend's measured figure")
    fc.add_argument("--estimator", action="append",
                    help="estimator to forecast; repeat for several (default: every one in the scaling file)")
    fc.add_argument("--scaling-file", default="var/bench/scaling.json", help="written by `pz bench scaling`")
    fc.add_argument("--overhead-file", default="var/bench/overhead.json",
                    help="saved overhead measurements (scripts/bench_airflow_tasks.py writes the local backend's)")
    fc.add_argument("--json", help="also write the forecast to this JSON file")
    fc.set_defaults(func=cmd_forecast)

    su = commands.add_parser("summary", help="where a run's photo-z tables are, and their metrics")
    su.add_argument("run_dir", help="run folder (a RunSpec's output)")
    su.set_defaults(func=cmd_summary)

    tk = commands.add_parser("token", help="PZ Server API tokens")
    tk_commands = tk.add_subparsers(dest="token_command", required=True)
    tk_create = tk_commands.add_parser("create", help="print a new API token for USER (created if needed)")
    tk_create.add_argument("username", metavar="USER")
    tk_create.add_argument("--admin", action="store_true", help="make USER an admin of the PZ Server")
    tk_create.add_argument("--label", default="", help="what the token is for, e.g. 'laptop notebook'")
    tk_create.set_defaults(func=cmd_token)

    rl = commands.add_parser("release", help="PZ Server data releases")
    rl_commands = rl.add_subparsers(dest="release_command", required=True)
    rl_set = rl_commands.add_parser("set", help="register release NAME, or change it")
    rl_set.add_argument("name", metavar="NAME", help="short name, e.g. dp1")
    rl_set.add_argument("--display-name", help="name shown to users (default: NAME, when creating)")
    rl_set.add_argument("--description")
    rl_set.add_argument("--public", action=argparse.BooleanOptionalAction, default=None,
                        help="every user sees its products (--no-public: only its --group members)")
    rl_set.add_argument("--group", action="append", help="access group of a non-public release (repeatable)")
    rl_set.add_argument("--object-catalog", help="the release's object catalog: a HATS folder with margin cache")
    rl_set.add_argument("--column-map", help="its photometry: a preset (lsst_mag, dm_cmodel, dm_gaap) or JSON")
    rl_set.set_defaults(func=cmd_release)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pzlib.estimate import configure_rail_logging

    configure_rail_logging("WARNING")  # progress bars instead of RAIL's per-chunk messages
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, PermissionError, OSError) as error:
        console.print(f"[bold red]pz {args.command}: error:[/] {error}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print(f"pz {args.command}: interrupted; finished outputs are kept, partial ones removed")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
