"""The cross-match sample: real structure (DM Object columns, HATS with margin, survey conventions), reproducible."""

from __future__ import annotations

import hats
import numpy as np
import pandas as pd
import pytest

from pzlib.catalog import open_catalog
from pzlib.crossmatch.config import DEFAULT_FLAG_TRANSLATION_FILE
from pzlib.crossmatch.flags import load_flag_translations
from pzlib.crossmatch.sample_data import (
    DM_EXAMPLE_FILE,
    SURVEYS,
    SampleConfig,
    make_sample_data,
    provide_sample_data,
)
from pzlib.samples import dc2_sample_paths


@pytest.fixture(scope="module")
def dm_example() -> pd.DataFrame:
    return pd.read_parquet(dc2_sample_paths()[0].with_name(DM_EXAMPLE_FILE))


def _sky_distance_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Pairwise separations (arcsec), rows × columns, for small catalogs."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(value, dtype=float)) for value in (ra1, dec1, ra2, dec2))
    cos = (np.sin(dec1)[:, None] * np.sin(dec2)[None, :]
           + np.cos(dec1)[:, None] * np.cos(dec2)[None, :] * np.cos(ra1[:, None] - ra2[None, :]))
    return np.degrees(np.arccos(np.clip(cos, -1, 1))) * 3600


def test_the_object_catalog_is_a_hats_collection_with_a_margin_cache(crossmatch_sample):
    collection = hats.read_hats(crossmatch_sample.objects)
    assert isinstance(collection, hats.catalog.CatalogCollection)
    assert collection.get_margin_thresholds()[collection.default_margin] == 5.0
    main = collection.main_catalog
    assert main.catalog_info.total_rows == 5_000
    assert main.catalog_info.ra_column == "ra" and main.catalog_info.dec_column == "decl"
    assert len(main.get_healpix_pixels()) > 1, "the tests need partition borders"


def test_objects_have_the_dm_object_columns_and_include_the_real_dm_objects(crossmatch_sample, dm_example):
    objects = open_catalog(crossmatch_sample.objects).read().to_pandas()
    assert [c for c in objects.columns if c not in ("_healpix_29",)] == [*dm_example.columns, "ebv"]
    assert objects["objectId"].is_unique
    real = objects.set_index("objectId").loc[dm_example["objectId"]]
    np.testing.assert_array_equal(real["i_gaap1p0Flux"].to_numpy(), dm_example["i_gaap1p0Flux"].to_numpy())
    assert objects["ebv"].between(0.005, 0.05).all()
    # Fluxes carry the example's noise: faint galaxies give negative fluxes (non-detections) as real data do.
    assert (objects["y_gaap1p0Flux"] < 0).any()


def test_truth_holds_the_dc2_redshifts_of_the_synthetic_objects(crossmatch_sample):
    truth = pd.read_parquet(crossmatch_sample.truth)
    assert len(truth) == 5_000 - 100
    assert truth["redshift"].between(0, 3.1).all()
    assert {f"mag_{band}_lsst" for band in "ugrizy"} <= set(truth.columns)


def test_each_survey_keeps_its_own_columns_format_and_flag_convention(crossmatch_sample):
    translations = load_flag_translations(DEFAULT_FLAG_TRANSLATION_FILE)
    assert [entry["survey"] for entry in crossmatch_sample.surveys] == [model.survey for model in SURVEYS]
    formats = set()
    for entry, model in zip(crossmatch_sample.surveys, SURVEYS, strict=True):
        reader = open_catalog(entry["path"])
        formats.add(reader.format)
        assert reader.num_rows == entry["rows"] > 0
        assert reader.column_names == list(model.columns.values())
        frame = reader.read().to_pandas().rename(columns={v: k for k, v in model.columns.items()})
        flags, unmatched = translations.lookup(model.survey).homogenize(frame)
        assert unmatched == [], (model.survey, unmatched)
        assert flags.notna().all(), model.survey
    assert formats == {"csv", "hdf5", "fits", "parquet"}


def test_surveys_overlap_on_the_sky_and_repeat_some_objects(crossmatch_sample):
    by_survey = {entry["survey"]: open_catalog(entry["path"]).read().to_pandas() for entry in crossmatch_sample.surveys}
    columns = {model.survey: model.columns for model in SURVEYS}

    def positions(survey):
        frame = by_survey[survey]
        return frame[columns[survey]["ra"]], frame[columns[survey]["dec"]]

    across = _sky_distance_arcsec(*positions("2DFGRS"), *positions("VVDS"))
    assert (across.min(axis=1) < 1.0).sum() > 10
    within = _sky_distance_arcsec(*positions("VVDS"), *positions("VVDS"))
    np.fill_diagonal(within, np.inf)
    assert (within.min(axis=1) < 1.0).any(), "VVDS re-observes some objects"


def test_the_reference_catalog_is_written_as_parquet_and_as_hats(crossmatch_sample):
    parquet = pd.read_parquet(crossmatch_sample.reference)
    hats_rows = open_catalog(crossmatch_sample.reference_hats).read().to_pandas()
    assert len(parquet) == len(hats_rows) == 500
    assert sorted(parquet["id"]) == sorted(hats_rows["id"])
    assert parquet["z_flag"].between(0, 4).all() and (parquet["z_err"] > 0).all()


def test_the_same_config_gives_the_same_catalogs_and_a_built_sample_is_reused(tmp_path):
    config = SampleConfig(n_objects=600, surveys=("2DFGRS", "JADES"))
    first = make_sample_data(tmp_path / "first", config)
    second = make_sample_data(tmp_path / "second", config)
    pd.testing.assert_frame_equal(pd.read_parquet(first.reference), pd.read_parquet(second.reference))
    for one, other in zip(first.surveys, second.surveys, strict=True):
        pd.testing.assert_frame_equal(open_catalog(one["path"]).read().to_pandas(),
                                      open_catalog(other["path"]).read().to_pandas())
    assert [entry["survey"] for entry in first.surveys] == ["2DFGRS", "JADES"]

    written_at = first.reference.stat().st_mtime_ns
    assert make_sample_data(tmp_path / "first", config).reference.stat().st_mtime_ns == written_at
    rebuilt = make_sample_data(tmp_path / "first", SampleConfig(n_objects=600, surveys=("2DFGRS",), seed=1))
    assert rebuilt.manifest["config"]["seed"] == 1 and len(rebuilt.surveys) == 1
    assert not list(tmp_path.glob(".first.tmp-*"))


def test_the_generator_scales_past_the_dc2_sample(tmp_path):
    sample = make_sample_data(tmp_path / "big", SampleConfig(n_objects=31_000, surveys=(), reference_rows=3_000))
    truth = pd.read_parquet(sample.truth)
    assert len(truth) == 30_900 and truth["objectId"].is_unique
    assert hats.read_hats(sample.objects).main_catalog.catalog_info.total_rows == 31_000
    assert len(pd.read_parquet(sample.reference)) == 3_000


def test_the_sample_is_provided_only_for_paths_inside_its_folder(tmp_path):
    config = SampleConfig(n_objects=300, surveys=())
    assert not provide_sample_data([str(tmp_path / "elsewhere.parquet")], tmp_path / "sample", config)
    assert not (tmp_path / "sample").exists()
    assert provide_sample_data([str(tmp_path / "sample" / "specz_reference.parquet")], tmp_path / "sample", config)
    assert (tmp_path / "sample" / "specz_reference.parquet").is_file()


def test_a_folder_holding_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        make_sample_data(tmp_path, SampleConfig(n_objects=300, surveys=()))
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("values", "field"), [({"n_objects": 10}, "n_objects"),
                                               ({"surveys": ("DESI",)}, "surveys"),
                                               ({"reference_rows": 0}, "reference_rows")])
def test_a_bad_sample_config_names_the_field(values, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        SampleConfig(**values)
