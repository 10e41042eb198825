"""Training Set Maker on the DC2 cross-match sample: request checks, the match itself (against brute force),
photometry, split, report, reruns and output formats."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from fixtures.crossmatch import specz_hats_pointing_outside

from pzlib.catalog import CatalogError, open_catalog
from pzlib.crossmatch import TsmConfig
from pzlib.crossmatch.sample_data import OBJECT_COLUMN_MAP, SURVEYS
from pzlib.crossmatch.tsm import check_inputs, make_training_set, split_flags
from pzlib.preprocess import SFD_EXTINCTION_COEFFICIENTS


def _separations_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(value, dtype=float)) for value in (ra1, dec1, ra2, dec2))
    cos = (np.sin(dec1)[:, None] * np.sin(dec2)[None, :]
           + np.cos(dec1)[:, None] * np.cos(dec2)[None, :] * np.cos(ra1[:, None] - ra2[None, :]))
    return np.degrees(np.arccos(np.clip(cos, -1, 1))) * 3600


@pytest.fixture(scope="module")
def made(crossmatch_sample, tmp_path_factory) -> tuple[dict, pd.DataFrame]:
    """(report, training set) of the sample's default request: flux map, SFD dereddening, 70/30 split."""
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(tmp_path_factory.mktemp("tsm")))
    report = make_training_set(config)
    return report, pd.read_parquet(report["output"]["path"])


@pytest.fixture(scope="module")
def objects(crossmatch_sample) -> pd.DataFrame:
    return open_catalog(crossmatch_sample.objects).read().to_pandas()


# --- the request ---------------------------------------------------------------------------------------------

BASE = {"specz_catalog": "specz.parquet", "object_catalog": "objects", "output_dir": "out"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"radius_arcsec": 0}, "radius_arcsec"),
        ({"radius_arcsec": -1.0}, "radius_arcsec"),
        ({"radius_arcsec": 61}, "radius_arcsec"),
        ({"radius_arcsec": float("nan")}, "radius_arcsec"),
        ({"radius_arcsec": "1"}, "radius_arcsec"),
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"n_neighbors": 1.5}, "n_neighbors"),
        ({"specz_columns": {"z": None}}, "specz_columns.z"),
        ({"specz_columns": {"ra": "x", "dec": "x"}}, "specz_columns"),
        ({"specz_columns": {"redshift": "z"}}, "specz_columns.redshift"),
        ({"specz_catalog": ""}, "specz_catalog"),
        ({"specz_catalog": "s3://bucket/specz.parquet"}, "specz_catalog"),
        ({"object_catalog": None}, "object_catalog"),
        ({"dereddening": "sfd"}, "dereddening"),
        ({"column_map": "dm_gaap", "dereddening": "sfd"}, "dereddening"),
        ({"column_map": "sdss"}, "column_map"),
        ({"dereddening": "planck"}, "dereddening"),
        ({"train_fraction": 1.0}, "train_fraction"),
        ({"split_seed": -1}, "split_seed"),
        ({"duplicate_criteria": "best"}, "duplicate_criteria"),
        ({"output_format": "xlsx"}, "output_format"),
        ({"output_name": "../up"}, "output_name"),
        ({"release": "no spaces"}, "release"),
        ({"selected_columns": "objectId"}, "selected_columns"),
        ({"radius": 1.0}, "radius"),
    ],
)
def test_a_bad_request_names_its_field(change, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        TsmConfig.from_params({**BASE, **change})


def test_defaults_and_a_file_uri():
    config = TsmConfig.from_params({**BASE, "specz_catalog": "file:///data/specz%20dr1.parquet"})
    assert (config.radius_arcsec, config.n_neighbors, config.train_fraction) == (1.0, 1, 0.7)
    assert config.id_column == "id"
    assert str(config.output_path) == "out/training_set.parquet"
    assert TsmConfig.from_params({**BASE, "column_map": "dm_gaap"}).id_column == "objectId"
    assert set(TsmConfig.params_schema()["properties"]) == set(config.to_params())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"specz_columns": {"ra": "ra", "dec": "dec", "z": "zspec"}}, "specz_columns.z: column 'zspec' is not in"),
        ({"selected_columns": ["ebv", "extendedness"]}, "selected_columns: column 'extendedness' is not in"),
        ({"object_id_column": "id"}, "object_id_column: column 'id' is not in"),
        ({"column_map": "dm_cmodel", "dereddening": None}, "column_map: column"),
        ({"radius_arcsec": 10.0}, "radius_arcsec: 10 exceeds the object catalog's margin cache (5 arcsec)"),
        ({"specz_catalog": "/nonexistent/specz.parquet"}, "specz_catalog: /nonexistent/specz.parquet"),
    ],
)
def test_check_inputs_names_the_field_before_any_work(crossmatch_sample, tmp_path, change, message):
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(tmp_path, **change))
    with pytest.raises(ValueError) as raised:
        check_inputs(config)
    assert str(raised.value).startswith(message), str(raised.value)
    assert not list(tmp_path.iterdir()), "nothing is written for a bad request"


def test_an_object_catalog_without_its_margin_cache_is_refused(crossmatch_sample, tmp_path):
    main_catalog_only = crossmatch_sample.objects / "objects"
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(tmp_path, object_catalog=str(main_catalog_only)))
    with pytest.raises(ValueError, match="^object_catalog: .* has no margin cache"):
        check_inputs(config)


def test_a_folder_that_is_not_hats_is_refused_as_object_catalog(crossmatch_sample, tmp_path):
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(tmp_path, object_catalog=str(tmp_path)))
    with pytest.raises(ValueError, match="^object_catalog: .* is not a HATS catalog"):
        check_inputs(config)


def test_a_stored_hats_spec_z_catalog_naming_a_folder_outside_it_stops_the_run(crossmatch_sample, tmp_path):
    hostile = specz_hats_pointing_outside(crossmatch_sample, tmp_path / "stored")
    output_dir = tmp_path / "out"
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(output_dir, specz_catalog=str(hostile)))
    with pytest.raises(ValueError) as raised:
        make_training_set(config)
    message = str(raised.value)
    assert message.startswith("specz_catalog: specz_reference_hats: collection.properties sets hats_primary_table_url")
    assert "an absolute path outside the catalog" in message
    assert not output_dir.exists()


# --- the match -----------------------------------------------------------------------------------------------

def test_every_spec_z_within_the_radius_is_matched_to_its_nearest_object(made, crossmatch_sample, objects):
    """Brute force over all objects: lsdb with the margin cache misses no match across partition borders."""
    report, training = made
    specz = pd.read_parquet(crossmatch_sample.reference)
    distances = _separations_arcsec(specz["ra"], specz["dec"], objects["ra"], objects["decl"])
    nearest = distances.argmin(axis=1)
    within = distances[np.arange(len(specz)), nearest] <= 1.0
    assert report["n_specz"] == 500
    assert report["n_specz_matched"] == int(within.sum())
    expected = dict(zip(specz["id"][within], objects["objectId"].to_numpy()[nearest[within]], strict=True))
    found = dict(zip(training["specz_id"], training["objectId"], strict=True))
    assert {key: expected[key] for key in found} == found
    assert report["n_pairs"] - report["n_pairs_dropped"] == len(training) == report["output"]["rows"]


def test_the_report_gives_the_matched_fraction_and_the_separation_distribution(made):
    report, training = made
    assert 0.95 <= report["matched_fraction"] < 1.0  # 2% of the reference has no counterpart
    assert report["matched_fraction"] == pytest.approx(report["n_specz_matched"] / report["n_specz"])
    separation = report["separation_arcsec"]
    percentiles = list(separation["percentiles"].values())
    assert percentiles == sorted(percentiles) and separation["max"] <= 1.0
    assert separation["percentiles"]["p50"] == pytest.approx(np.median(training["separation_arcsec"]), abs=1e-4)
    assert sum(separation["histogram"]["counts"]) == len(training)
    assert separation["histogram"]["edges"][0] == 0 and separation["histogram"]["edges"][-1] == 1.0
    stored = json.loads(open(report["report_path"]).read())
    assert stored["matched_fraction"] == report["matched_fraction"]
    assert report["columns_association"] == {"id": "objectId", "ra": "ra", "dec": "decl", "z": "redshift",
                                             "z_err": "redshift_err", "z_flag": "redshift_flag"}


def test_the_training_set_has_rails_columns_and_true_redshifts(made, crossmatch_sample):
    _, training = made
    for band in "ugrizy":
        assert {f"mag_{band}_lsst", f"mag_err_{band}_lsst"} <= set(training.columns)
    assert {"redshift", "redshift_err", "redshift_flag", "specz_id", "specz_ra", "specz_dec",
            "separation_arcsec", "is_training_set"} <= set(training.columns)
    assert training["objectId"].is_unique  # duplicate_criteria 'closest'
    truth = pd.read_parquet(crossmatch_sample.truth).set_index("objectId")
    compared = training.join(truth, on="objectId", rsuffix="_true").dropna(subset=["redshift_true"])
    relative = (compared["redshift"] - compared["redshift_true"]).abs() / (1 + compared["redshift_true"])
    assert relative.median() < 0.002
    secure = compared["redshift_flag"] == 4
    assert (relative[secure] < 0.01).mean() > 0.95


def test_dereddened_magnitudes_recover_the_true_ones(made, crossmatch_sample):
    _, training = made
    truth = pd.read_parquet(crossmatch_sample.truth).set_index("objectId")
    compared = training.join(truth, on="objectId", rsuffix="_true").dropna(subset=["redshift_true"])
    bright = compared[compared["mag_i_lsst_true"] < 22.5]
    assert len(bright) > 20
    assert (bright["mag_i_lsst"] - bright["mag_i_lsst_true"]).abs().median() < 0.03


def test_without_dereddening_magnitudes_differ_by_the_extinction(made, crossmatch_sample, tmp_path):
    _, dereddened = made
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(tmp_path, dereddening=None))
    reddened = pd.read_parquet(make_training_set(config)["output"]["path"])
    merged = dereddened.merge(reddened, on="objectId", suffixes=("", "_reddened"))
    detected = merged["mag_g_lsst"] < 90
    difference = (merged["mag_g_lsst_reddened"] - merged["mag_g_lsst"])[detected]
    np.testing.assert_allclose(difference, SFD_EXTINCTION_COEFFICIENTS["g"] * merged["ebv"][detected], atol=1e-4)


def test_non_detections_get_rails_sentinel(made):
    _, training = made
    undetected = training["y_gaap1p0Flux"] <= 0
    assert undetected.any()
    assert (training.loc[undetected, "mag_y_lsst"] == 99.0).all()


def test_fluxes_kept_as_fluxes_are_dereddened_in_place(crossmatch_sample, objects, tmp_path):
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(
        tmp_path, convert_flux_to_mag=False, selected_columns=["ebv"]))
    training = pd.read_parquet(make_training_set(config)["output"]["path"])
    assert "mag_i_lsst" not in training.columns
    raw = objects.set_index("objectId").loc[training["objectId"]]
    factor = 10 ** (0.4 * SFD_EXTINCTION_COEFFICIENTS["i"] * raw["ebv"].to_numpy())
    np.testing.assert_allclose(training["i_gaap1p0Flux"], raw["i_gaap1p0Flux"].to_numpy() * factor)


def test_the_split_follows_the_fraction_and_depends_only_on_the_object_id(made):
    _, training = made
    assert training["is_training_set"].mean() == pytest.approx(0.7, abs=0.06)
    shuffled = training.sample(frac=1.0, random_state=1)
    np.testing.assert_array_equal(split_flags(shuffled["objectId"], 0.7, 0), shuffled["is_training_set"])
    assert not np.array_equal(split_flags(training["objectId"], 0.7, 1), training["is_training_set"])


def test_several_neighbours_and_every_pair(crossmatch_sample, tmp_path):
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(
        tmp_path, radius_arcsec=5.0, n_neighbors=3, duplicate_criteria="all", train_fraction=None))
    report = make_training_set(config)
    training = pd.read_parquet(report["output"]["path"])
    assert report["n_pairs"] == len(training) > report["n_specz_matched"]
    assert training.groupby("specz_id").size().max() == 3
    assert "is_training_set" not in training.columns
    assert training.groupby("specz_id")["separation_arcsec"].apply(lambda s: s.is_monotonic_increasing).all()


def test_a_hats_spec_z_catalog_gives_the_same_training_set(made, crossmatch_sample, tmp_path):
    _, from_parquet = made
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(
        tmp_path, specz_catalog=str(crossmatch_sample.reference_hats)))
    from_hats = pd.read_parquet(make_training_set(config)["output"]["path"])
    columns = ["specz_id", "objectId", "redshift", "mag_i_lsst", "is_training_set"]
    pd.testing.assert_frame_equal(from_hats[columns].sort_values("specz_id").reset_index(drop=True),
                                  from_parquet[columns].sort_values("specz_id").reset_index(drop=True))


def test_a_survey_file_in_its_own_convention_is_a_spec_z_catalog(crossmatch_sample, tmp_path):
    survey = crossmatch_sample.surveys[0]  # 2dFGRS-like CSV: text ids, integer quality, no z_err
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(
        tmp_path, specz_catalog=survey["path"], specz_columns=survey["columns"], column_map="dm_gaap",
        dereddening=None, selected_columns=[]))
    report = make_training_set(config)
    training = pd.read_parquet(report["output"]["path"])
    assert training["specz_id"].str.startswith("TGS").all()
    assert set(training["redshift_flag"]) <= {1, 2, 3, 4, 5}
    assert report["columns_association"]["z_flag"] == "redshift_flag" and "z_err" not in report["columns_association"]
    assert list(training.columns[:3]) == ["objectId", "ra", "decl"] and "ebv" not in training.columns


@pytest.mark.parametrize("output_format", ["csv", "hats"])
def test_other_output_formats_hold_the_same_rows(made, crossmatch_sample, tmp_path, output_format):
    report, training = made
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(tmp_path, output_format=output_format))
    written = make_training_set(config)
    reader = open_catalog(written["output"]["path"])
    assert reader.format == output_format and reader.num_rows == len(training)
    assert written["matched_fraction"] == report["matched_fraction"]


# --- reruns and bad values -----------------------------------------------------------------------------------

def test_a_rerun_keeps_the_output_and_a_changed_request_redoes_it(crossmatch_sample, tmp_path, caplog):
    params = crossmatch_sample.tsm_params(tmp_path, selected_columns=[])
    first = make_training_set(TsmConfig.from_params(params))
    output = tmp_path / "training_set.parquet"
    written_at = output.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="pzlib.crossmatch.tsm"):
        again = make_training_set(TsmConfig.from_params({**params, "workers": 1}))
    assert again["kept"] and not first["kept"]
    assert output.stat().st_mtime_ns == written_at
    assert "kept the training set" in caplog.text
    changed = make_training_set(TsmConfig.from_params({**params, "radius_arcsec": 0.5}))
    assert not changed["kept"] and changed["separation_arcsec"]["max"] <= 0.5
    output.unlink()
    assert not make_training_set(TsmConfig.from_params(params))["kept"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["training_set.parquet", "training_set.report.json"]


def test_the_run_logs_the_matched_fraction_and_the_separations(crossmatch_sample, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="pzlib.crossmatch.tsm"):
        report = make_training_set(TsmConfig.from_params(crossmatch_sample.tsm_params(tmp_path, selected_columns=[])))
    assert f'matched {report["n_specz_matched"]} of 500 spec-z' in caplog.text
    assert "separation (arcsec): mean" in caplog.text


def test_a_spec_z_catalog_with_missing_redshifts_stops_before_writing(crossmatch_sample, tmp_path):
    specz = pd.read_parquet(crossmatch_sample.reference)
    specz.loc[[3, 7], "z"] = np.nan
    broken = tmp_path / "broken.parquet"
    specz.to_parquet(broken)
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(tmp_path / "out", specz_catalog=str(broken)))
    with pytest.raises(CatalogError, match=r"broken.parquet, column 'z': 2 row\(s\) have no z"):
        make_training_set(config)
    assert not (tmp_path / "out").exists()


def test_a_spec_z_catalog_off_the_object_catalog_is_named(crossmatch_sample, tmp_path):
    specz = pd.read_parquet(crossmatch_sample.reference)
    elsewhere = tmp_path / "elsewhere.parquet"
    specz.assign(dec=specz["dec"] + 10).to_parquet(elsewhere)
    config = TsmConfig.from_params(crossmatch_sample.tsm_params(tmp_path / "out", specz_catalog=str(elsewhere)))
    with pytest.raises(ValueError, match="^specz_catalog: .*elsewhere.parquet does not overlap the object catalog"):
        make_training_set(config)
    assert not (tmp_path / "out").exists()


def test_the_sample_column_map_is_a_column_map():
    from pzlib.column_maps import column_map

    assert column_map(OBJECT_COLUMN_MAP).ebv_column == "ebv"
    assert {model.survey for model in SURVEYS} == {"2DFGRS", "SDSS", "VVDS", "JADES", "2MRS"}
