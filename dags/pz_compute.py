"""pz_compute: the photo-z table of a data release, in four stages.

Stage I acquires the input catalog (clean, map columns, split into partitions); stage II trains one model per
estimator; stage III estimates the partitions — with backend 'local', every (estimator, partition) pair is its own
mapped task, so a failing partition fails alone and clearing it recomputes only that partition; with backend
'slurm', each estimator is one deferrable task (``pzlib.cluster.airflow.JobArrayOperator``) driving
``pzlib.compute.estimate_array`` on its cluster: the Airflow SSH connection the ``cluster`` param names (one for
all, or one per estimator, so a run can spread over two clusters; default ``pz_slurm``). The
``backend`` param's default is the deployment's ``PZ_BACKEND``, so the scheduled runs go where it says. Stage IV
assembles each estimator's photo-z catalog, its metrics and validation report, and publishes the report in the PZ
Server as a ``validation_results`` product — with two or more estimators, their side-by-side comparison too (param
``publish``; owned by the ``owner`` param's user, by default the platform user ``pz-compute``; a rerun replaces the
run's product). The run is fully described by its params,
checked against ``pzlib.compute.params.RUN_PARAMS_SCHEMA`` when it is triggered (an invalid conf gets HTTP 400
naming the param) and again by ``RunSpec.from_params`` when it starts. The defaults describe the DC2 sample release
of the embedded default; the yearly schedule reprocesses that release, and any other release is a trigger with
conf. A failed task is retried with a growing delay (``pzlib.retries``; the ``retries`` param sets another number
for a run): every task keeps what already verifies, so a retry redoes only what is missing.

All the work is in ``pzlib.compute``. Parsing this file loads only the params' JSON schema
(``pzlib.compute.params``); the spec and the stages are imported inside the tasks, so that the dag-processor, which
re-parses the file every ``min_file_process_interval``, stays cheap.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from airflow.sdk import Param, dag, get_current_context, task, task_group

from pzlib.cluster.airflow import JobArrayOperator
from pzlib.column_maps import COLUMN_MAPS
from pzlib.compute.params import RUN_PARAMS_SCHEMA
from pzlib.config import load_settings
from pzlib.retries import RETRIES_PARAM, RETRIES_PARAM_SCHEMA, TASK_RETRIES, task_retry_args, without_retries
from pzlib.samples import DC2_TRAINING_FILE, DC2_VALIDATION_FILE, dc2_sample_path

DC2_SAMPLE_RELEASE = "dc2-sample"
S3_CONN_ID = "pz_s3"
_SCHEMA = RUN_PARAMS_SCHEMA["properties"]


def _param(name: str, default, title: str, description: str) -> Param:
    """A param with the JSON schema of the RunSpec field and the UI's words."""
    return Param(default, **_SCHEMA[name], title=title, description=description)


PARAMS = {
    "release": _param("release", DC2_SAMPLE_RELEASE, "Release",
                      "Release name: up to 64 letters, digits, '.', '_', '-'; names the run's products."),
    "input": _param("input", str(dc2_sample_path(DC2_VALIDATION_FILE)), "Input catalog",
                    "Object catalog to estimate: Parquet file or folder, HATS folder, HDF5, CSV or FITS."),
    "train": _param("train", str(dc2_sample_path(DC2_TRAINING_FILE)), "Training catalog",
                    "Training set with a true-redshift column (see training_truth_column)."),
    "output": _param("output", str(load_settings().state_dir / "pz_compute" / DC2_SAMPLE_RELEASE), "Output folder",
                     "Folder of the run: partitions, models, per-partition outputs, photo-z catalogs."),
    "estimators": _param("estimators", ["fzboost", "bpz"], "Estimators",
                         "RAIL estimators: fzboost, bpz, tpz, gpz, cmnn, dnf, knn, or any installed RAIL estimator "
                         "class by name; two or more are also compared side by side."),
    "column_map": _param("column_map", "lsst_mag", "Column map",
                         "How the input's columns map to magnitudes and errors: a preset "
                         f"({', '.join(COLUMN_MAPS)}) or an object of pzlib.column_maps.ColumnMap fields."),
    "backend": _param("backend", load_settings().backend, "Backend",
                      "Where stage III runs: 'local' processes or the 'slurm' cluster (default: PZ_BACKEND)."),
    "partition_rows": _param("partition_rows", 150_000, "Rows per partition",
                             "Rows per stage I partition, hence per stage III task."),
    "truth_column": _param("truth_column", "redshift", "Truth column",
                           "True-redshift column of the input for the metrics of stage IV; null when there is none."),
    "training_truth_column": _param("training_truth_column", "redshift", "Training truth column",
                                    "True-redshift column of the training catalog."),
    "rail_options": _param("rail_options", {}, "RAIL options",
                           'Extra RAIL configuration per estimator, e.g. {"fzboost": {"nbump": 5}}.'),
    "publish": _param("publish", True, "Publish the catalogs and validation reports",
                      "Stage IV registers each estimator's photo-z catalog and validation report as products of "
                      "the PZ Server."),
    "owner": _param("owner", None, "Owner of the published products",
                    "An existing PZ Server user; empty: the platform user 'pz-compute' (its products are official)."),
    "destination": _param(
        "destination", None, "Destination",
        "s3://bucket/prefix where each estimator's HATS catalog is delivered (at PREFIX/ESTIMATOR) and verified "
        "against its manifest; empty: the catalogs stay in the output folder. Endpoint and keys: the Airflow "
        "connection 'pz_s3' (extra endpoint_url, login/password as keys), else the PZ_S3_* settings."),
    "resources": _param(
        "resources", {}, "Cluster resources",
        "Job array resources for backend 'slurm': cpus, mem, time_limit, partition, account, max_concurrent, "
        'partitions_per_task; per estimator under its name, e.g. {"partition": "cpu", "bpz": {"mem": "3G"}}. They '
        "override the cluster's own defaults."),
    "cluster": _param(
        "cluster", None, "Cluster",
        "Backend 'slurm': the Airflow SSH connection of the cluster (empty: pz_slurm), or one per estimator, e.g. "
        '{"bpz": "apollo", "fzboost": "sdumont"}.'),
    RETRIES_PARAM: Param(TASK_RETRIES, **RETRIES_PARAM_SCHEMA),
}


def _run_spec():
    """The RunSpec of the running task's DAG run, rebuilt from its params (they never change in a run)."""
    from pzlib.compute.spec import RunSpec

    return RunSpec.from_params(without_retries(get_current_context()["params"]))


def _s3_access():
    """Where S3 is and its keys, for s3:// inputs and the destination: the connection ``pz_s3`` if there is one,
    else the deployment's ``PZ_S3_*`` settings; never the run's params."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from pzlib.storage.s3_access import S3Access

    try:
        connection = Connection.get(S3_CONN_ID)
    except AirflowNotFoundException:
        return S3Access.from_settings(load_settings())
    return S3Access.from_connection_fields(connection.host, connection.login, connection.password,
                                           connection.extra_dejson)


def _cluster_of(params: dict, stage_args: dict) -> str:
    """The Airflow connection of the cluster that runs the estimator's arrays."""
    from pzlib.compute.spec import RunSpec

    return RunSpec.from_params(without_retries(params)).clusters()[stage_args["estimator"]]


def _estimate_array(params: dict, stage_args: dict, items: list[str], **array):
    """Stage III of one estimator as job arrays (what :class:`JobArrayOperator` drives)."""
    from pzlib.compute.estimate_array import EstimateArray
    from pzlib.compute.spec import RunSpec

    spec = RunSpec.from_params(without_retries(params))
    return EstimateArray(spec, stage_args["estimator"], stage_args["model_path"], items, **array)


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
            """Fail before any work if the params do not describe a run, name an unknown owner, a cluster
            connection that is not one, or a destination that cannot be written or holds another release; return
            its estimators."""
            from pzlib.cluster.airflow import check_clusters
            from pzlib.compute.deliver import check_destinations
            from pzlib.compute.publish import check_publishing

            spec = _run_spec()
            check_publishing(spec)
            if spec.backend == "slurm":
                check_clusters(sorted(set(spec.clusters().values())))
            check_destinations(spec, _s3_access())
            return spec.estimators

        @task
        def partition_input() -> list[str]:
            """Clean the input catalog and split it into partitions; return the partition paths."""
            from pzlib.compute.acquire import acquire

            return acquire(_run_spec(), s3=_s3_access())

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
            return {"estimator": estimator, "model_path": train_model(_run_spec(), estimator, s3=_s3_access())}

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
        on_cluster = JobArrayOperator.partial(
            task_id="estimate_on_cluster", stage=_estimate_array, items=partition_paths, conn_id=_cluster_of,
            backend="{{ params.backend }}", map_index_template="{{ map_label }}", execution_timeout=timedelta(days=3),
        ).expand(stage_args=models)
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

        @task
        def publish_comparison() -> dict | None:
            """Publish the run's estimators side by side (table and overlaid plots) in the PZ Server when it has
            two or more (else nothing, and the task succeeds); a rerun replaces the same product."""
            from pzlib.compute.publish import publish_comparison as publish

            dag_run = get_current_context()["dag_run"]
            return publish(_run_spec(), triggered_by=dag_run.triggering_user_name, run_id=dag_run.run_id)

        @task(map_index_template="{{ map_label }}")
        def deliver_catalog(assembled: dict) -> dict:
            """Copy the estimator's catalog to the run's destination and verify it there (skipped without one);
            a rerun copies only what is missing or differs."""
            from airflow.sdk.exceptions import AirflowSkipException

            from pzlib.compute.deliver import deliver_catalog as deliver

            context = get_current_context()
            context["map_label"] = assembled["estimator"]
            delivered = deliver(_run_spec(), assembled["estimator"], _s3_access(), report=print)
            if delivered is None:
                raise AirflowSkipException("nothing to deliver: the run has no destination")
            return delivered

        @task(map_index_template="{{ map_label }}", trigger_rule="none_failed")
        def publish_catalog(assembled: dict) -> dict:
            """Register the estimator's photo-z catalog in the PZ Server (manifest, Felis schema, provenance,
            linked report); a rerun replaces the same product."""
            from airflow.sdk.exceptions import AirflowSkipException

            from pzlib.compute.publish import publish_catalog as publish

            context = get_current_context()
            context["map_label"] = assembled["estimator"]
            dag_run = context["dag_run"]
            published = publish(_run_spec(), assembled["estimator"], dag_id=dag_run.dag_id, run_id=dag_run.run_id,
                                triggered_by=dag_run.triggering_user_name)
            if published is None:
                raise AirflowSkipException("nothing to publish: param publish is off")
            return published

        assembled = assemble_catalog.partial(partition_paths=partition_paths).expand(model=models)
        reports = publish_report.expand(assembled=assembled)
        reports >> publish_comparison()
        deliveries = deliver_catalog.expand(assembled=assembled)
        [reports, deliveries] >> publish_catalog.expand(assembled=assembled)

    estimators, partition_paths = stage_1_acquire()
    models = stage_2_train(estimators)
    stage_3_estimate(models, partition_paths) >> stage_4_postprocess(models, partition_paths)


pz_compute()
