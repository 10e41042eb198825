"""training_set_maker: a training set from a spec-z catalog cross-matched with a release's object catalog.

The spec-z catalog (any format, or HATS) is cross-matched with the release's object catalog (HATS with its
margin cache) by lsdb: each spec-z keeps its ``n_neighbors`` nearest objects within ``radius_arcsec``, an
object claimed by several spec-z keeps the closest (``duplicate_criteria``), the photometry is cleaned and
optionally turned into dereddened AB magnitudes (``column_map``, ``convert_flux_to_mag``, ``dereddening``),
and ``is_training_set`` splits the rows (``train_fraction``, ``split_seed``). The matched fraction and the
separation distribution go to the task log and to ``OUTPUT_DIR/OUTPUT_NAME.report.json``, next to the
training set; the task's return value (XCom) is that report.

The PZ Server starts runs for its processes (the pzserver client's requests) with the ``pzserver_process``
param set: ``publish_to_pzserver`` then registers the output, its report and column association as the
process's product and publishes it, and a failed task fails the process with its error.

A run is fully described by its params, checked against the JSON schema of ``pzlib.crossmatch.TsmConfig``
when it is triggered (an invalid conf gets HTTP 400 naming the param) and again by ``TsmConfig.from_params``
when it starts; ``check_request`` then checks the catalogs' columns and the margin cache before any work. A
rerun of a finished request keeps its output, so a failed task is retried, with a growing delay
(``pzlib.retries``; the ``retries`` param sets another number for a run). The defaults describe the DC2
cross-match sample of the embedded default, built on first use. All the work is in ``pzlib.crossmatch.tsm``,
imported inside the tasks; parsing this file loads only the request types, which import no science package.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from pzlib.column_maps import COLUMN_MAPS
from pzlib.config import load_settings
from pzlib.crossmatch.config import TsmConfig
from pzlib.registry.process_runs import (
    PROCESS_PARAM,
    PROCESS_PARAM_SCHEMA,
    request_params,
    run_finished,
    run_started,
    task_failed,
)
from pzlib.retries import RETRIES_PARAM, RETRIES_PARAM_SCHEMA, TASK_RETRIES, task_retry_args, without_retries
from pzlib.samples import OBJECT_COLUMN_MAP

SAMPLE_DIR = load_settings().state_dir / "crossmatch" / "dc2-sample"
"""Where pzlib.crossmatch.sample_data builds the sample the defaults use (on first use)."""
_SCHEMA = TsmConfig.params_schema()["properties"]


def _param(name: str, default, title: str, description: str, **constraints) -> Param:
    """A param with the JSON schema of TsmConfig's field (plus ``constraints``) and the UI's words."""
    return Param(default, **{**_SCHEMA[name], **constraints}, title=title, description=description)


PARAMS = {
    "release": _param("release", "dc2-sample", "Release",
                      "Release the object catalog belongs to: up to 64 letters, digits, '.', '_', '-'."),
    "specz_catalog": _param(
        "specz_catalog", str(SAMPLE_DIR / "specz_reference.parquet"), "Spec-z catalog",
        "Path or file:// URI of the spec-z catalog: Parquet, CSV, FITS, HDF5 file or HATS folder."),
    "specz_columns": _param(
        "specz_columns", {"id": "id", "ra": "ra", "dec": "dec", "z": "z", "z_err": "z_err", "z_flag": "z_flag"},
        "Spec-z columns", "Spec-z catalog columns of the roles ra, dec, z and id, z_err, z_flag (or null)."),
    "object_catalog": _param(
        "object_catalog", str(SAMPLE_DIR / "objects"), "Object catalog",
        "The release's object catalog: a HATS collection folder (catalog and margin cache)."),
    "object_id_column": _param("object_id_column", None, "Object id column",
                               "Object id column; null: the column map's id column, else 'id'."),
    "selected_columns": _param("selected_columns", None, "Selected columns",
                               "Object catalog columns copied into the training set besides id, ra, dec; null: all."),
    "column_map": _param(
        "column_map", dict(OBJECT_COLUMN_MAP), "Column map",
        "The object catalog's photometry: a preset "
        f"({', '.join(COLUMN_MAPS)}) or an object of pzlib.column_maps.ColumnMap fields; with it the training set "
        "gets RAIL's mag_{band}_lsst and mag_err_{band}_lsst. Null: photometry copied as it is."),
    "convert_flux_to_mag": _param("convert_flux_to_mag", True, "Convert fluxes to magnitudes",
                                  "With a flux column map: AB magnitudes (true) or the fluxes as they are (false)."),
    "dereddening": _param("dereddening", "sfd", "Dereddening",
                          "'sfd': correct for Galactic extinction with the column map's E(B−V) column; null: none."),
    "radius_arcsec": _param("radius_arcsec", 1.0, "Match radius (arcsec)",
                            "Objects farther than this from a spec-z are not matched; at most 60 arcsec."),
    "n_neighbors": _param("n_neighbors", 1, "Neighbours per spec-z",
                          "Objects kept per spec-z within the radius, nearest first."),
    "duplicate_criteria": _param("duplicate_criteria", "closest", "Objects matched twice",
                                 "An object matched by several spec-z: keep the 'closest' spec-z, or 'all' pairs."),
    "train_fraction": _param("train_fraction", 0.7, "Training fraction",
                             "Fraction of rows with is_training_set true; null adds no split column."),
    "split_seed": _param("split_seed", 0, "Split seed",
                         "Seed of the train/test split (a row's side depends only on its object id and the seed)."),
    "output_dir": _param("output_dir", str(load_settings().state_dir / "training_set_maker" / "dc2-sample"),
                         "Output folder", "Folder of the training set and its report; created if missing."),
    "output_name": _param("output_name", "training_set", "Output name",
                          "File stem of the training set (folder name for HATS) and of its report."),
    "output_format": _param("output_format", "parquet", "Output format",
                            "parquet, csv, or hats (a HATS collection with margin cache)."),
    "workers": _param("workers", 2, "Threads", "Threads of the local Dask scheduler running the cross-match."),
    PROCESS_PARAM: Param(None, **PROCESS_PARAM_SCHEMA),
    RETRIES_PARAM: Param(TASK_RETRIES, **RETRIES_PARAM_SCHEMA),
}


def _config() -> TsmConfig:
    """The TsmConfig of the running task's DAG run, rebuilt from its params (they never change in a run)."""
    return TsmConfig.from_params(request_params(without_retries(get_current_context()["params"])))


@dag(
    dag_id="training_set_maker",
    schedule=None,
    catchup=False,
    params=PARAMS,
    default_args={**task_retry_args(), "execution_timeout": timedelta(hours=6), "on_failure_callback": task_failed},
    tags=["pz-server", "crossmatch"],
    doc_md=__doc__,
)
def training_set_maker():
    @task
    def check_request() -> dict:
        """Fail before any work unless the params and the catalogs make a request; return its plan."""
        from pzlib.crossmatch.sample_data import provide_sample_data
        from pzlib.crossmatch.tsm import check_inputs

        config = _config()
        run_started(get_current_context()["params"])
        provide_sample_data([config.specz_catalog, config.object_catalog], SAMPLE_DIR)
        return check_inputs(config).to_dict()

    @task
    def make_training_set() -> dict:
        """Cross-match and write the training set and its report (matched fraction, separations)."""
        from pzlib.crossmatch.tsm import make_training_set as make

        return make(_config())

    @task
    def publish_to_pzserver(report: dict) -> dict | None:
        """When the run carries out a PZ Server process: register the output as its product and publish it."""
        return run_finished(get_current_context()["params"], report)

    check_request() >> publish_to_pzserver(make_training_set())


training_set_maker()
