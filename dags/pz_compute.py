"""pz_compute: the photo-z table of a data release, in four stages.

Stage I acquires the input catalog (clean, map columns, split into partitions); stage II trains one model
per estimator; stage III estimates the partitions — with backend 'local', every (estimator, partition) pair is
its own mapped task, so a failing partition fails alone and clearing it recomputes only that partition; with
backend 'slurm', each estimator is one deferrable task running one job array on the cluster (SSH settings
from the Airflow connection ``pz_slurm``; see ``pzlib.cluster.airflow``); stage IV assembles each estimator's
photo-z catalog, its metrics and validation report, and publishes the report in the PZ Server as a
``validation_results`` product (param ``publish``; owned by the ``owner`` param's user, by default the platform
user ``pz-compute``; a rerun replaces the run's product). The run is fully described by its params, checked
against the schema below when it is triggered (an invalid conf gets HTTP 400 naming the param) and again by
``pzlib.compute.spec.RunSpec.from_params`` when it starts. The defaults describe the DC2 sample release of the
embedded default; the yearly schedule reprocesses that release, and any other release is a trigger with conf.
A failed task is retried with a growing delay (``pzlib.retries``; the ``retries`` param sets another number
for a run): every task keeps what already verifies, so a retry redoes only what is missing.

All the work is in ``pzlib.compute``; it is imported inside the tasks so that parsing this file stays
cheap (the dag-processor re-parses it every ``min_file_process_interval``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from airflow.sdk import Param, dag, get_current_context, task, task_group

from pzlib.cluster.airflow import EstimateArrayOperator
from pzlib.config import load_settings
from pzlib.retries import RETRIES_PARAM, RETRIES_PARAM_SCHEMA, TASK_RETRIES, task_retry_args, without_retries
from pzlib.samples import DC2_TRAINING_FILE, DC2_VALIDATION_FILE, dc2_sample_path

DC2_SAMPLE_RELEASE = "dc2-sample"
COLUMN_MAP_PRESETS = ("lsst_mag", "dm_cmodel", "dm_gaap")
"""Names of pzlib.catalog.COLUMN_MAPS, spelled out here because importing pzlib.catalog loads pyarrow."""


PARAMS = {
    "release": Param(
        DC2_SAMPLE_RELEASE,
        type="string",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        title="Release",
        description="Release name: up to 64 letters, digits, '.', '_', '-'; names the run's products.",
    ),
    "input": Param(
        str(dc2_sample_path(DC2_VALIDATION_FILE)),
        type="string",
        minLength=1,
        title="Input catalog",
        description="Object catalog to estimate: Parquet file or folder, HATS folder, HDF5, CSV or FITS.",
    ),
    "train": Param(
        str(dc2_sample_path(DC2_TRAINING_FILE)),
        type="string",
        minLength=1,
        title="Training catalog",
        description="Training set with a true-redshift column (see truth_column).",
    ),
    "output": Param(
        str(load_settings().state_dir / "pz_compute" / DC2_SAMPLE_RELEASE),
        type="string",
        minLength=1,
        title="Output folder",
        description="Folder of the run: partitions, models, per-partition outputs, photo-z catalogs.",
    ),
    "estimators": Param(
        ["fzboost", "bpz"],
        type="array",
        items={"type": "string", "minLength": 1},
        minItems=1,
        uniqueItems=True,
        title="Estimators",
        description="RAIL estimators: 'fzboost', 'bpz', or any installed RAIL estimator by name.",
    ),
    "column_map": Param(
        "lsst_mag",
        type=["string", "object"],
        anyOf=[{"type": "string", "enum": list(COLUMN_MAP_PRESETS)}, {"type": "object"}],
        title="Column map",
        description=(
            "How the input's columns map to magnitudes and errors: a preset "
            f"({', '.join(COLUMN_MAP_PRESETS)}) or an object of pzlib.catalog.ColumnMap fields."
        ),
    ),
    "backend": Param(
        "local",
        type="string",
        enum=["local", "slurm"],
        title="Backend",
        description="Where stage III runs: 'local' processes or the 'slurm' cluster.",
    ),
    "partition_rows": Param(
        150_000,
        type="integer",
        minimum=1,
        title="Rows per partition",
        description="Rows per stage I partition, hence per stage III task.",
    ),
    "truth_column": Param(
        "redshift",
        type=["string", "null"],
        title="Truth column",
        description="True-redshift column of the input for the metrics of stage IV; null when there is none.",
    ),
    "training_truth_column": Param(
        "redshift",
        type="string",
        minLength=1,
        title="Training truth column",
        description="True-redshift column of the training catalog.",
    ),
    "rail_options": Param(
        {},
        type="object",
        title="RAIL options",
        description='Extra RAIL configuration per estimator, e.g. {"fzboost": {"nbump": 5}}.',
    ),
    "publish": Param(
        True,
        type="boolean",
        title="Publish the validation reports",
        description="Stage IV registers each estimator's validation report as a product of the PZ Server.",
    ),
    "owner": Param(
        None,
        type=["string", "null"],
        pattern=r"^[\w.@+-]{1,150}$",
        title="Owner of the published products",
        description="An existing PZ Server user; empty: the platform user 'pz-compute'.",
    ),
    "resources": Param(
        {},
        type="object",
        title="Cluster resources",
        description=(
            "Job array resources for backend 'slurm': cpus, mem, time_limit, partition, account, max_concurrent, "
            'partitions_per_task; per estimator under its name, e.g. {"partition": "cpu", "bpz": {"mem": "3G"}}.'
        ),
    ),
    RETRIES_PARAM: Param(TASK_RETRIES, **RETRIES_PARAM_SCHEMA),
}


def _run_spec():
    """The RunSpec of the running task's DAG run, rebuilt from its params (they never change in a run)."""
    from pzlib.compute.spec import RunSpec

    return RunSpec.from_params(without_retries(get_current_context()["params"]))


@dag(
    dag_id="pz_compute",
    schedule="@yearly",
    catchup=False,
    params=PARAMS,
    max_active_runs=1,
    default_args={**task_retry_args(), "execution_timeout": timedelta(hours=6)},
    tags=["pz-compute"],
    doc_md=__doc__,
)
def pz_compute():
    @task_group(group_id="stage_1_acquire")
    def stage_1_acquire():
        @task
        def check_run() -> list[str]:
            """Fail before any work if the params do not describe a run or name an unknown owner; return its
            estimators."""
            from pzlib.compute.publish import check_publishing

            spec = _run_spec()
            check_publishing(spec)
            return spec.estimators

        @task
        def partition_input() -> list[str]:
            """Clean the input catalog and split it into partitions; return the partition paths."""
            from pzlib.compute.acquire import acquire

            return acquire(_run_spec())

        estimators = check_run()
        partition_paths = partition_input()
        estimators >> partition_paths
        return estimators, partition_paths

    @task_group(group_id="stage_2_train")
    def stage_2_train(estimators):
        @task(map_index_template="{{ map_label }}")
        def train(estimator: str) -> dict:
            """Train (or reuse) the estimator's model."""
            from pzlib.compute.train import train_model

            get_current_context()["map_label"] = estimator
            return {"estimator": estimator, "model_path": train_model(_run_spec(), estimator)}

        return train.expand(estimator=estimators)

    @task_group(group_id="stage_3_estimate")
    def stage_3_estimate(models, partition_paths):
        @task.branch
        def choose_backend() -> str:
            """Local processes: one task per (estimator, partition); a cluster: one job array per estimator."""
            chosen = "estimate_on_cluster" if _run_spec().backend == "slurm" else "estimate"
            return f"stage_3_estimate.{chosen}"

        @task(map_index_template="{{ map_label }}", execution_timeout=timedelta(hours=2))
        def estimate(model: dict, partition_path: str) -> dict:
            """Estimate one partition with one model; an output that exists and verifies is kept."""
            from pzlib.compute.estimate_partitions import estimate_partition

            estimator = model["estimator"]
            get_current_context()["map_label"] = f"{estimator} {Path(partition_path).name}"
            output_path = estimate_partition(_run_spec(), estimator, model["model_path"], partition_path)
            return {"estimator": estimator, "output_path": output_path}

        # Cross product: every model meets every partition.
        on_this_machine = estimate.expand(model=models, partition_path=partition_paths)
        # The task waits deferred (no worker slot) while its array runs, however long the cluster takes.
        on_cluster = EstimateArrayOperator.partial(
            task_id="estimate_on_cluster", partition_paths=partition_paths, map_index_template="{{ map_label }}",
            execution_timeout=timedelta(days=3),
        ).expand(model=models)
        models >> choose_backend() >> [on_this_machine, on_cluster]

    @task_group(group_id="stage_4_postprocess")
    def stage_4_postprocess(models, partition_paths):
        # One stage III variant ran, the other was skipped.
        @task(map_index_template="{{ map_label }}", trigger_rule="none_failed_min_one_success")
        def assemble_catalog(model: dict, partition_paths: list[str]) -> dict:
            """Assemble the estimator's photo-z catalog from its partition outputs; compute its metrics."""
            from pzlib.compute.assemble import assemble

            estimator = model["estimator"]
            get_current_context()["map_label"] = estimator
            spec = _run_spec()
            output_paths = [str(spec.partition_output(estimator, path)) for path in partition_paths]
            return {"estimator": estimator, **assemble(spec, estimator, output_paths)}

        @task(map_index_template="{{ map_label }}")
        def publish_report(assembled: dict) -> dict:
            """Publish the estimator's validation report in the PZ Server; a rerun replaces the same product."""
            from airflow.sdk.exceptions import AirflowSkipException

            from pzlib.compute.publish import publish_validation

            context = get_current_context()
            context["map_label"] = assembled["estimator"]
            dag_run = context["dag_run"]
            published = publish_validation(_run_spec(), assembled["estimator"],
                                           triggered_by=dag_run.triggering_user_name, run_id=dag_run.run_id)
            if published is None:
                raise AirflowSkipException("nothing to publish: param publish is off, or the input has no truth")
            return published

        assembled = assemble_catalog.partial(partition_paths=partition_paths).expand(model=models)
        publish_report.expand(assembled=assembled)

    estimators, partition_paths = stage_1_acquire()
    models = stage_2_train(estimators)
    stage_3_estimate(models, partition_paths) >> stage_4_postprocess(models, partition_paths)


pz_compute()
