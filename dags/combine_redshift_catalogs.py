"""combine_redshift_catalogs: N spec-z catalogs merged into one, duplicates marked or removed.

Each input names its file, its survey and the columns holding ra, dec, z (and id, z_err, z_flag); its
quality flags are translated to a homogenized 0–4 scale by the survey's entry in
``include/crc/flag_translation.yaml`` (or its inline ``flag_translation``). Rows within ``radius_arcsec`` of
each other are duplicates (an lsdb self cross-match, grouped transitively); the best of a group has the highest
homogenized flag, then the smallest redshift error, then comes from the earlier input. ``combine_type``:
``concatenate``, ``concatenate_and_mark_duplicates`` (every row, with ``group_id``, ``n_in_group``,
``is_best``) or ``concatenate_and_remove_duplicates`` (the best rows only). The counts and the separation
distribution of the duplicate pairs go to the task log and to ``OUTPUT_DIR/OUTPUT_NAME.report.json``; the
task's return value (XCom) is that report.

The PZ Server starts runs for its processes (the pzserver client's requests) with the ``pzserver_process``
param set: ``publish_to_pzserver`` then registers the output, its report and column association as the
process's product and publishes it, and a failed task fails the process with its error.

A run is fully described by its params, checked against the JSON schema of ``pzlib.crossmatch.CrcConfig``
when it is triggered (an invalid conf gets HTTP 400 naming the param) and again by ``CrcConfig.from_params``
when it starts (a survey without a flag translation fails there); ``check_request`` then checks every
file's columns. A rerun of a finished request keeps its output, so a failed task is retried, with a growing
delay (``pzlib.retries``; the ``retries`` param sets another number for a run). The defaults combine the five
mock surveys of the DC2 cross-match sample of the embedded default, built on first use. All the work is in
``pzlib.crossmatch.crc``, imported inside the tasks.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from pzlib.config import load_settings
from pzlib.crossmatch.config import CrcConfig
from pzlib.registry.process_runs import (
    PROCESS_PARAM,
    PROCESS_PARAM_SCHEMA,
    request_params,
    run_finished,
    run_started,
    task_failed,
)
from pzlib.retries import RETRIES_PARAM, RETRIES_PARAM_SCHEMA, TASK_RETRIES, task_retry_args, without_retries

SAMPLE_DIR = load_settings().state_dir / "crossmatch" / "dc2-sample"
"""Where pzlib.crossmatch.sample_data builds the sample the defaults use (on first use)."""
_SCHEMA = CrcConfig.params_schema()["properties"]


def _sample_survey(file_name: str, survey: str, **columns: str) -> dict:
    """One mock survey of pzlib.crossmatch.sample_data.SURVEYS (spelled out: that module loads numpy) as an input."""
    return {"path": str(SAMPLE_DIR / "surveys" / file_name), "survey": survey, "columns": columns}


SAMPLE_INPUTS = [
    _sample_survey("2dfgrs.csv", "2DFGRS", id="name", ra="ra_j2000_deg", dec="dec_j2000_deg", z="z",
                   z_flag="quality"),
    _sample_survey("sdss.hdf5", "SDSS", id="SPECOBJID", ra="PLUG_RA", dec="PLUG_DEC", z="Z", z_err="Z_ERR",
                   z_flag="ZWARNING"),
    _sample_survey("vvds.fits", "VVDS", id="NUM", ra="ALPHA", dec="DELTA", z="Z", z_flag="ZFLAGS"),
    _sample_survey("jades.parquet", "JADES", id="Unique_ID", ra="RA_TARG", dec="Dec_TARG", z="z_Spec",
                   z_flag="z_Spec_flag"),
    _sample_survey("2mrs.parquet", "2MRS", id="TMID", ra="RA", dec="DEC", z="redshift", z_err="redshift_err"),
]


def _param(name: str, default, title: str, description: str) -> Param:
    """A param with the JSON schema of CrcConfig's field and the UI's words."""
    return Param(default, **_SCHEMA[name], title=title, description=description)


PARAMS = {
    "inputs": _param(
        "inputs", SAMPLE_INPUTS, "Spec-z catalogs",
        "The catalogs, in priority order: [{path, survey, columns: {ra, dec, z, id, z_err, z_flag}, "
        "flag_translation, survey_column, untranslated_surveys}]; path: a file or HATS folder (or file:// URI); "
        "survey: its key in the flag translation table; survey_column: a column naming each row's survey (a "
        "compiled catalog), translated row by row; untranslated_surveys: 'refuse' a survey without a translation "
        "or 'rank_last' its rows; columns default to ra, dec, z."),
    "combine_type": _param("combine_type", "concatenate_and_mark_duplicates", "Combine type",
                           "Concatenate only, or also mark or remove the duplicates."),
    "radius_arcsec": _param("radius_arcsec", 1.0, "Duplicate radius (arcsec)",
                            "Rows closer than this are the same object; at most 60 arcsec."),
    "n_neighbors": _param("n_neighbors", 16, "Neighbours searched",
                          "Neighbours searched per row within the radius (itself included)."),
    "flag_translation_file": _param("flag_translation_file", None, "Flag translation file",
                                    "YAML of per-survey flag translations; null: include/crc/flag_translation.yaml."),
    "release": _param("release", None, "Release",
                      "Release the combined catalog is meant for, if any (recorded in the report)."),
    "output_dir": _param("output_dir", str(load_settings().state_dir / "combine_redshift_catalogs" / "dc2-sample"),
                         "Output folder", "Folder of the combined catalog and its report; created if missing."),
    "output_name": _param("output_name", "combined_redshift_catalog", "Output name",
                          "File stem of the combined catalog (folder name for HATS) and of its report."),
    "output_format": _param("output_format", "parquet", "Output format",
                            "parquet, csv, or hats (a HATS collection with margin cache)."),
    "workers": _param("workers", 2, "Threads", "Threads of the local Dask scheduler running the duplicate search."),
    PROCESS_PARAM: Param(None, **PROCESS_PARAM_SCHEMA),
    RETRIES_PARAM: Param(TASK_RETRIES, **RETRIES_PARAM_SCHEMA),
}


def _config() -> CrcConfig:
    """The CrcConfig of the running task's DAG run, rebuilt from its params (they never change in a run)."""
    return CrcConfig.from_params(request_params(without_retries(get_current_context()["params"])))


@dag(
    dag_id="combine_redshift_catalogs",
    schedule=None,
    catchup=False,
    params=PARAMS,
    default_args={**task_retry_args(), "execution_timeout": timedelta(hours=6), "on_failure_callback": task_failed},
    tags=["pz-server", "crossmatch"],
    doc_md=__doc__,
)
def combine_redshift_catalogs():
    @task
    def check_request() -> list[dict]:
        """Fail before any work unless the params and every catalog make a request; return the inputs found."""
        from pzlib.crossmatch.crc import check_inputs
        from pzlib.crossmatch.sample_data import provide_sample_data

        config = _config()
        run_started(get_current_context()["params"])
        provide_sample_data([entry.path for entry in config.inputs], SAMPLE_DIR)
        return check_inputs(config)

    @task
    def combine_catalogs() -> dict:
        """Combine the catalogs and write the result and its report (duplicates, flags, separations)."""
        from pzlib.crossmatch.crc import combine_catalogs as combine

        return combine(_config())

    @task
    def publish_to_pzserver(report: dict) -> dict | None:
        """When the run carries out a PZ Server process: register the output as its product and publish it."""
        return run_finished(get_current_context()["params"], report)

    check_request() >> publish_to_pzserver(combine_catalogs())


combine_redshift_catalogs()
