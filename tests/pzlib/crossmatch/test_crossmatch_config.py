"""PZ Server requests of TSM and CRC become checked params in pzlib.crossmatch.config: LIneA's fields translated,
a field left out taking the config's default, a bad one named as LIneA calls it."""

from __future__ import annotations

from dataclasses import MISSING, fields

import pytest

from pzlib.crossmatch.config import PZSERVER_REQUESTS, CrcConfig, TsmConfig
from pzlib.registry.pipelines import PIPELINES, get_pipeline

SPECZ = {"path": "/data/specz.parquet", "survey": "DESI", "columns": {"ra": "ra", "dec": "dec", "z": "z"}}
OBJECT_COLUMN_MAP = {"value_template": "{band}_cModelFlux", "error_template": "{band}_cModelFluxErr", "kind": "flux",
                     "id_column": "objectId", "ebv_column": "ebv"}
RELEASE = {"name": "dp1", "object_catalog": "/data/dp1/objects", "object_column_map": OBJECT_COLUMN_MAP}


def tsm(param: dict, **request) -> dict:
    return TsmConfig.params_from_pzserver_request(param, **{"inputs": [SPECZ], "release": RELEASE,
                                                            "output_dir": "/out", **request})


def crc(param: dict, **request) -> dict:
    return CrcConfig.params_from_pzserver_request(param, **{"inputs": [SPECZ, {**SPECZ, "survey": "VVDS"}],
                                                            "release": None, "output_dir": "/out", **request})


def test_every_pipeline_of_the_pz_server_has_its_request_translation():
    assert set(PZSERVER_REQUESTS) == {pipeline.name for pipeline in PIPELINES}


@pytest.mark.parametrize("pipeline, config_class, translate",
                         [("training_set_maker", TsmConfig, tsm), ("combine_redshift_dedup", CrcConfig, crc)])
def test_linea_defaults_shown_by_the_pz_server_are_the_configs_defaults(pipeline, config_class, translate):
    """The registry lists LIneA's defaults of each pipeline (what its client shows); they must mean the config's."""
    params = translate(get_pipeline(pipeline).parameters)
    defaults = {f.name: f.default for f in fields(config_class) if f.default is not MISSING}
    differing = {name: value for name, value in params.items() if name in defaults and value != defaults[name]}
    assert differing == ({"dereddening": "sfd", "release": "dp1", "column_map": OBJECT_COLUMN_MAP}
                         if config_class is TsmConfig else {})


def test_linea_words_become_the_configs_values():
    params = tsm({"flux_type": "gaap", "dereddening": "none", "crossmatch": {"radius_arcsec": 0.5},
                  "split": {"method": "random", "train_fraction": 0.8, "seed": 7}})
    assert (params["column_map"], params["dereddening"], params["radius_arcsec"]) == ("dm_gaap", None, 0.5)
    assert (params["n_neighbors"], params["train_fraction"], params["split_seed"]) == (1, 0.8, 7)
    assert (params["specz_catalog"], params["object_catalog"], params["release"]) == (
        SPECZ["path"], RELEASE["object_catalog"], "dp1")
    assert tsm({"flux_type": "auto"})["column_map"] == OBJECT_COLUMN_MAP
    combined = crc({"combine_type": "concatenate", "crossmatch": {"n_neighbors": 4}}, output_format="csv")
    assert (combined["combine_type"], combined["n_neighbors"], combined["radius_arcsec"]) == ("concatenate", 4, 1.0)
    assert [entry["survey"] for entry in combined["inputs"]] == ["DESI", "VVDS"] and combined["output_format"] == "csv"


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda: tsm({"colour": "red"}), "param.colour: unknown parameter"),
        (lambda: tsm({"crossmatch": {"radius": 1}}), "param.crossmatch.radius: unknown parameter"),
        (lambda: tsm({"split": 0.7}), "param.split: must be an object"),
        (lambda: tsm({"split": {"method": "spatial"}}), "param.split.method: only 'random'"),
        (lambda: tsm({"crossmatch": {"radius_arcsec": 0}}), "radius_arcsec: must be > 0"),
        (lambda: tsm({}, release=None), "give a release"),
        (lambda: tsm({}, release={**RELEASE, "object_catalog": None}), "'dp1' has no object catalog registered"),
        (lambda: tsm({}, inputs=[SPECZ, SPECZ]), "inputs: the Training Set Maker reads one spec-z catalog, got 2"),
        (lambda: tsm({}, flag_translation_file="/f.yaml"), "takes no flag translation file"),
        (lambda: crc({"flags_translation_file": "/home/x.yaml"}), "send the file itself"),
        (lambda: crc({"combine_type": "merge"}), "combine_type: must be one of"),
    ],
)
def test_a_bad_request_names_the_field(make, problem):
    with pytest.raises(ValueError, match=problem):
        make()
