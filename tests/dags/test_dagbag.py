"""DAG integrity: every file in dags/ parses as the dag-processor parses it, cheaply, into the intended DAGs.

The parse runs in a fresh interpreter with the environment of scripts/airflow/env.sh (the repo's airflow.cfg,
a throwaway AIRFLOW_HOME), so the modules it loads are exactly those a DAG file pulls in at parse time.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fixtures.airflow import AIRFLOW_SCRIPTS, REPO_ROOT, airflow_environment

# Modules that would make parsing slow or memory-hungry: the science stack belongs inside tasks.
HEAVY_MODULES = {
    "numpy", "pandas", "pyarrow", "scipy", "sklearn", "jax", "numba", "astropy", "h5py", "tables",
    "rail", "qp", "tables_io", "lsdb", "hats", "nested_pandas", "dask", "great_expectations",
    "pzlib.compute.spec", "pzlib.catalog", "pzlib.estimate", "pzlib.preprocess",
}  # fmt: skip

STAGE_GROUPS = ["stage_1_acquire", "stage_2_train", "stage_3_estimate", "stage_4_postprocess"]
RETRIES_PARAM = "retries"
"""The param through which a run sets its tasks' retries (pzlib.retries.RETRIES_PARAM); no pipeline field."""

_PARSE_SCRIPT = """
import json, sys, time
from airflow.configuration import conf
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator
from airflow.sdk.definitions.taskgroup import TaskGroup

modules_before = set(sys.modules)
started = time.perf_counter()
bag = DagBag(dag_folder=conf.get("core", "dags_folder"))
parse_seconds = time.perf_counter() - started
report = {
    "dags_folder": conf.get("core", "dags_folder"),
    "parse_seconds": parse_seconds,
    "new_modules": sorted(set(sys.modules) - modules_before),
    "import_errors": bag.import_errors,
    "dags": {
        dag_id: {
            "fileloc": dag.fileloc,
            "schedule": dag.schedule if isinstance(dag.schedule, str) else repr(dag.schedule),
            "catchup": dag.catchup,
            "start_date": dag.start_date and dag.start_date.isoformat(),
            "groups": sorted(
                group_id
                for group_id, child in dag.task_group.children.items()
                if isinstance(child, TaskGroup)
            ),
            "tasks": {
                task.task_id: {
                    "group": task.task_group.group_id,
                    "mapped": isinstance(task, MappedOperator),
                    "retries": task.retries,
                    "retry_delay_s": task.retry_delay.total_seconds(),
                    "retry_exponential_backoff": task.retry_exponential_backoff,
                    "max_retry_delay_s": task.max_retry_delay and task.max_retry_delay.total_seconds(),
                    # What its retry policy (plugins/airflow_local_settings.py) says of bad data, of an I/O error.
                    "after": [task.retry_policy and task.retry_policy.evaluate(error, 1, 4).action.value
                              for error in (ValueError("bad data"), OSError("disk"))],
                }
                for task in dag.tasks
            },
            "params": {
                name: {"default": param.value, "schema": param.schema}
                for name, param in ((name, dag.params.get_param(name)) for name in dag.params)
            },
        }
        for dag_id, dag in bag.dags.items()
    },
}
print("PZ_DAGBAG_REPORT " + json.dumps(report, default=str))
"""


def parse_dags(state_dir, **settings: str) -> dict:
    """What parsing dags/ produced, with these extra environment variables: DAGs, import errors, modules it
    loaded, how long it took."""
    parsed = subprocess.run(
        ["bash", "-c", 'source "$1" && exec "$2" -c "$3"', "parse",
         AIRFLOW_SCRIPTS / "env.sh", sys.executable, _PARSE_SCRIPT],
        env={**airflow_environment(state_dir), **settings}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert parsed.returncode == 0, parsed.stderr
    report_line = next(line for line in parsed.stdout.splitlines() if line.startswith("PZ_DAGBAG_REPORT "))
    report = json.loads(report_line.removeprefix("PZ_DAGBAG_REPORT "))
    print(f"parsed {len(report['dags'])} DAG(s) in {report['parse_seconds']:.2f} s")
    return report


@pytest.fixture(scope="module")
def dagbag_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return parse_dags(tmp_path_factory.mktemp("airflow_parse"))


def test_the_repo_dags_folder_is_parsed(dagbag_report):
    assert dagbag_report["dags_folder"] == str(REPO_ROOT / "dags")


def test_every_dag_file_imports_without_errors(dagbag_report):
    assert dagbag_report["import_errors"] == {}
    files_with_dags = {dag["fileloc"] for dag in dagbag_report["dags"].values()}
    dag_files = {str(path) for path in (REPO_ROOT / "dags").glob("*.py") if not path.name.startswith("_")}
    assert dag_files <= files_with_dags, f"files that define no DAG: {sorted(dag_files - files_with_dags)}"


def test_parsing_loads_no_heavy_module(dagbag_report):
    loaded = {
        module
        for module in dagbag_report["new_modules"]
        if module in HEAVY_MODULES or module.split(".")[0] in HEAVY_MODULES
    }
    assert not loaded, f"DAG files import these at parse time; import them inside tasks: {sorted(loaded)}"


def test_pz_compute_has_the_four_stages_yearly_without_catchup(dagbag_report):
    dag = dagbag_report["dags"]["pz_compute"]
    assert dag["groups"] == STAGE_GROUPS
    assert all(task["group"] in STAGE_GROUPS for task in dag["tasks"].values())
    assert dag["schedule"] == "@yearly"
    assert dag["catchup"] is False
    # No start_date: turning the DAG on waits for the next 1 January instead of running the past year.
    assert dag["start_date"] is None


def test_pz_compute_maps_training_and_estimation(dagbag_report):
    tasks = dagbag_report["dags"]["pz_compute"]["tasks"]
    assert tasks["stage_2_train.train"]["mapped"]
    assert tasks["stage_3_estimate.estimate"]["mapped"]
    assert tasks["stage_4_postprocess.assemble_catalog"]["mapped"]


def _refines(base: dict, schema: dict) -> bool:
    """Whether `schema` states every constraint of `base` (recursively), possibly with more of its own."""
    return all(
        key in schema
        and (_refines(value, schema[key]) if isinstance(value, dict) and isinstance(schema[key], dict)
             else schema[key] == value)
        for key, value in base.items()
    )  # fmt: skip


def test_every_task_of_every_dag_is_retried_with_backoff_unless_its_data_is_bad(dagbag_report):
    from pzlib.retries import MAX_RETRY_DELAY, RETRY_BACKOFF, RETRY_DELAY, TASK_RETRIES

    policies = {(dag_id, task_id): (task["retries"], task["retry_delay_s"], task["retry_exponential_backoff"],
                                    task["max_retry_delay_s"], task["after"])
                for dag_id, dag in dagbag_report["dags"].items() for task_id, task in dag["tasks"].items()}
    expected = (TASK_RETRIES, RETRY_DELAY.total_seconds(), RETRY_BACKOFF, MAX_RETRY_DELAY.total_seconds(),
                ["fail", "default"])
    assert TASK_RETRIES > 0 and RETRY_BACKOFF > 1
    assert {key: policy for key, policy in policies.items() if policy != expected} == {}
    for dag in dagbag_report["dags"].values():
        assert dag["params"][RETRIES_PARAM]["default"] == TASK_RETRIES


def test_pz_compute_params_are_the_runspec_fields(dagbag_report):
    from pzlib.compute.spec import RunSpec

    params = dict(dagbag_report["dags"]["pz_compute"]["params"])
    params.pop(RETRIES_PARAM)
    runspec_fields = RunSpec.params_schema()["properties"]
    assert set(params) == set(runspec_fields)
    for name, field_schema in runspec_fields.items():
        assert _refines(field_schema, params[name]["schema"]), (name, field_schema, params[name]["schema"])


def test_pz_compute_defaults_are_a_valid_run(dagbag_report):
    """The scheduled yearly run uses the defaults: they must describe a run RunSpec accepts."""
    from pzlib.compute.spec import RunSpec

    params = dagbag_report["dags"]["pz_compute"]["params"]
    defaults = {name: param["default"] for name, param in params.items() if name != RETRIES_PARAM}
    spec = RunSpec.from_params(defaults)
    assert spec.release == "dc2-sample"


def test_pz_compute_backend_defaults_to_the_deployments_setting(dagbag_report, tmp_path):
    """PZ_BACKEND decides where the runs triggered without a backend, the scheduled ones among them, go."""
    assert dagbag_report["dags"]["pz_compute"]["params"]["backend"]["default"] == "local"
    on_slurm = parse_dags(tmp_path, PZ_BACKEND="slurm")
    assert on_slurm["dags"]["pz_compute"]["params"]["backend"]["default"] == "slurm"


def test_pz_compute_column_map_presets_are_pzlibs(dagbag_report):
    from pzlib.column_maps import COLUMN_MAPS

    column_map_schema = dagbag_report["dags"]["pz_compute"]["params"]["column_map"]["schema"]
    preset_choice = next(choice for choice in column_map_schema["anyOf"] if "enum" in choice)
    assert set(preset_choice["enum"]) == set(COLUMN_MAPS)


CROSSMATCH_DAGS = {
    "training_set_maker": ["check_request", "make_training_set", "publish_to_pzserver"],
    "combine_redshift_catalogs": ["check_request", "combine_catalogs", "publish_to_pzserver"],
}
PROCESS_PARAM = "pzserver_process"
"""The param the PZ Server sets on the runs of its processes (pzlib.registry.process_runs.PROCESS_PARAM)."""


def _crossmatch_config(dag_id: str):
    from pzlib.crossmatch import CrcConfig, TsmConfig

    return TsmConfig if dag_id == "training_set_maker" else CrcConfig


@pytest.mark.parametrize("dag_id", sorted(CROSSMATCH_DAGS))
def test_crossmatch_dags_run_on_request_only(dagbag_report, dag_id):
    dag = dagbag_report["dags"][dag_id]
    assert dag["schedule"] == "None"
    assert dag["catchup"] is False
    assert sorted(dag["tasks"]) == CROSSMATCH_DAGS[dag_id]
    assert not any(task["mapped"] for task in dag["tasks"].values())


@pytest.mark.parametrize("dag_id", sorted(CROSSMATCH_DAGS))
def test_crossmatch_dag_params_are_the_config_fields(dagbag_report, dag_id):
    params = dict(dagbag_report["dags"][dag_id]["params"])
    assert params.pop(PROCESS_PARAM)["default"] is None
    params.pop(RETRIES_PARAM)
    config_fields = _crossmatch_config(dag_id).params_schema()["properties"]
    assert set(params) == set(config_fields)
    for name, field_schema in config_fields.items():
        assert _refines(field_schema, params[name]["schema"]), (name, field_schema, params[name]["schema"])


@pytest.mark.parametrize("dag_id", sorted(CROSSMATCH_DAGS))
def test_crossmatch_dag_defaults_are_a_valid_request_on_the_sample(dagbag_report, dag_id):
    """Triggered without conf, a DAG runs on the DC2 cross-match sample (built on first use)."""
    from pathlib import Path

    from pzlib.crossmatch.sample_data import OBJECT_COLUMN_MAP, REFERENCE_COLUMNS, SURVEYS

    defaults = {name: param["default"] for name, param in dagbag_report["dags"][dag_id]["params"].items()
                if name not in (PROCESS_PARAM, RETRIES_PARAM)}
    config = _crossmatch_config(dag_id).from_params(defaults)
    if dag_id == "training_set_maker":
        assert Path(config.specz_catalog).name == "specz_reference.parquet"
        assert Path(config.object_catalog) == Path(config.specz_catalog).with_name("objects")
        assert config.column_map == OBJECT_COLUMN_MAP
        assert config.specz_columns.roles() == REFERENCE_COLUMNS
    else:
        assert [(Path(entry.path).name, entry.survey, entry.columns.roles()) for entry in config.inputs] == [
            (model.file_name, model.survey, model.columns) for model in SURVEYS]
        tsm_defaults = dagbag_report["dags"]["training_set_maker"]["params"]
        sample_dir = Path(tsm_defaults["object_catalog"]["default"]).parent
        assert {Path(entry.path).parent.parent for entry in config.inputs} == {sample_dir}


def test_training_set_maker_column_map_presets_are_pzlibs(dagbag_report):
    from pzlib.column_maps import COLUMN_MAPS

    column_map_schema = dagbag_report["dags"]["training_set_maker"]["params"]["column_map"]["schema"]
    preset_choice = next(choice for choice in column_map_schema["anyOf"] if "enum" in choice)
    assert set(preset_choice["enum"]) == set(COLUMN_MAPS)
