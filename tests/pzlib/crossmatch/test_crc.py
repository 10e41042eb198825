"""Combine Redshift Catalogs and the flag translations, on the five mock surveys of the DC2 cross-match sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures.crossmatch import specz_hats_pointing_outside

from pzlib.catalog import CatalogError, open_catalog
from pzlib.crossmatch import CrcConfig
from pzlib.crossmatch import crc as crc_module
from pzlib.crossmatch.config import DEFAULT_FLAG_TRANSLATION_FILE
from pzlib.crossmatch.crc import check_inputs, combine_catalogs
from pzlib.crossmatch.flags import FlagTranslation, flag_key, load_flag_translations


def _pairs_within(frame: pd.DataFrame, radius_arcsec: float) -> int:
    """Pairs of rows closer than the radius, by brute force."""
    ra, dec = np.radians(frame["ra"].to_numpy()), np.radians(frame["dec"].to_numpy())
    cos = np.sin(dec)[:, None] * np.sin(dec)[None, :] + np.cos(dec)[:, None] * np.cos(dec)[None, :] * np.cos(
        ra[:, None] - ra[None, :])
    distances = np.degrees(np.arccos(np.clip(cos, -1, 1))) * 3600
    return int(np.triu(distances <= radius_arcsec, k=1).sum())


@pytest.fixture(scope="module")
def marked(crossmatch_sample, tmp_path_factory) -> tuple[dict, pd.DataFrame]:
    output_dir = tmp_path_factory.mktemp("crc_mark")
    report = combine_catalogs(CrcConfig.from_params(crossmatch_sample.crc_params(output_dir)))
    return report, pd.read_parquet(report["output"]["path"])


# --- flag translations ---------------------------------------------------------------------------------------

def test_flag_values_match_as_text_whatever_their_type():
    assert flag_key(3) == flag_key(3.0) == flag_key("3") == flag_key(b"3") == flag_key(np.int16(3)) == "3"
    assert flag_key(np.nan) is None and flag_key(None) is None and flag_key("  ") is None
    assert flag_key(2.5) == "2.5"


def test_the_translation_table_of_the_repo_loads():
    translations = load_flag_translations(DEFAULT_FLAG_TRANSLATION_FILE)
    assert {"2DFGRS", "VVDS", "JADES", "SDSS", "2MRS", "DEEP2", "PRIMUS"} <= set(translations.surveys())
    assert translations.lookup("vvds").flags["9"] == 2
    assert translations.lookup("2mrs").needs_columns() == {"z_err"}


def test_flags_conditions_and_default_apply_in_that_order():
    translation = FlagTranslation.from_dict("mock", {
        "flags": {"A": 4, 2: 1},
        "conditions": [{"when": ["z_err < 0.001"], "flag": 3}, {"when": "z > 2", "flag": 0}],
    })
    frame = pd.DataFrame({"z_flag": ["A", "2", None, None, None], "z_err": [0.5, 0.5, 0.0005, 0.01, np.nan],
                          "z": [0.1, 0.1, 0.1, 2.5, 0.1]})
    flags, unmatched = translation.homogenize(frame)
    assert flags.tolist() == [4, 1, 3, 0, pd.NA] and unmatched == []
    frame.loc[0, "z_flag"] = "Q"
    assert translation.homogenize(frame)[1] == ["Q"]
    with_default = FlagTranslation.from_dict("sdss-like", {"flags": {"0": 4}, "default": 0})
    flags, unmatched = with_default.homogenize(pd.DataFrame({"z_flag": [0, 4, 16, 0]}))
    assert flags.tolist() == [4, 0, 0, 4] and unmatched == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"flags": {"A": 5}}, "homogenized flag must be one of 0–4"),
        ({"flags": {"A": 4}, "conditions": [{"when": ["snr > 3"], "flag": 4}]}, "compares 'snr'"),
        ({"conditions": [{"when": ["z_err"], "flag": 4}]}, "not a comparison"),
        ({"grades": {"A": 4}}, "unknown key 'grades'"),
        ({}, "has no flags, conditions or default"),
    ],
)
def test_a_malformed_translation_says_what_is_wrong(entry, message):
    with pytest.raises(ValueError, match=message):
        FlagTranslation.from_dict("mock", entry)


def test_a_broken_translation_file_is_named(tmp_path):
    broken = tmp_path / "flags.yaml"
    broken.write_text("surveys:\n  MOCK:\n    flags: {A: 9}\n")
    with pytest.raises(ValueError, match=f"flag translation file {broken}: survey 'MOCK'"):
        load_flag_translations(broken)
    with pytest.raises(ValueError, match="flag_translation_file"):
        CrcConfig.from_params({"inputs": [{"path": "a.csv", "survey": "X"}], "output_dir": "out",
                               "flag_translation_file": ""})


# --- the request ---------------------------------------------------------------------------------------------

ONE = {"path": "a.parquet", "survey": "JADES", "columns": {"z_flag": "grade"}}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"inputs": []}, "inputs"),
        ({"inputs": [{"survey": "JADES"}]}, r"inputs\[0\].path"),
        ({"inputs": [ONE, {"path": "b.csv", "survey": ""}]}, r"inputs\[1\].survey"),
        ({"inputs": [{**ONE, "survey": "NOPE"}]}, r"inputs\[0\].survey"),
        ({"inputs": [{**ONE, "flag_translation": {"flags": {"A": 7}}}]}, r"inputs\[0\].flag_translation"),
        ({"inputs": [{**ONE, "columns": {"dec": None}}]}, r"inputs\[0\].columns.dec"),
        ({"inputs": [{**ONE, "colums": {}}]}, r"inputs\[0\].colums"),
        ({"inputs": [ONE], "radius_arcsec": 0}, "radius_arcsec"),
        ({"inputs": [ONE], "radius_arcsec": 3600}, "radius_arcsec"),
        ({"inputs": [ONE], "combine_type": "merge"}, "combine_type"),
        ({"inputs": [ONE], "n_neighbors": 1}, "n_neighbors"),
        ({"inputs": [ONE], "output_format": "fits"}, "output_format"),
    ],
)
def test_a_bad_request_names_its_field(params, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        CrcConfig.from_params({"output_dir": "out", **params})


def test_a_survey_without_a_translation_is_fine_without_flags():
    config = CrcConfig.from_params({"output_dir": "out", "inputs": [{"path": "a.csv", "survey": "NEW"}]})
    assert config.inputs[0].columns.roles() == {"ra": "ra", "dec": "dec", "z": "z"}


def test_check_inputs_names_the_input_and_the_column(crossmatch_sample, tmp_path):
    params = crossmatch_sample.crc_params(tmp_path)
    params["inputs"][2]["columns"] = {**params["inputs"][2]["columns"], "z": "ZSPEC"}
    with pytest.raises(ValueError, match=r"^inputs\[2\].columns.z: column 'ZSPEC' is not in .*vvds.fits"):
        check_inputs(CrcConfig.from_params(params))
    params = crossmatch_sample.crc_params(tmp_path)
    params["inputs"][4]["columns"] = {**params["inputs"][4]["columns"], "z_err": None}
    with pytest.raises(ValueError, match=r"^inputs\[4\].columns.z_err: the flag translation of survey '2MRS'"):
        check_inputs(CrcConfig.from_params(params))
    assert not list(tmp_path.iterdir())


def test_a_stored_hats_input_naming_a_folder_outside_it_stops_the_run(crossmatch_sample, tmp_path):
    params = crossmatch_sample.crc_params(tmp_path / "out")
    params["inputs"][1]["path"] = str(specz_hats_pointing_outside(crossmatch_sample, tmp_path / "stored"))
    with pytest.raises(ValueError) as raised:
        combine_catalogs(CrcConfig.from_params(params))
    message = str(raised.value)
    assert message.startswith("inputs[1].path: specz_reference_hats: collection.properties sets hats_primary_table_url")
    assert "an absolute path outside the catalog" in message
    assert not (tmp_path / "out").exists()


# --- combining -----------------------------------------------------------------------------------------------

def test_concatenate_keeps_every_row_with_homogenized_flags(crossmatch_sample, tmp_path):
    report = combine_catalogs(CrcConfig.from_params(crossmatch_sample.crc_params(tmp_path,
                                                                                 combine_type="concatenate")))
    combined = pd.read_parquet(report["output"]["path"])
    assert len(combined) == sum(entry["rows"] for entry in crossmatch_sample.surveys) == report["n_rows_in"]
    assert list(combined.columns) == ["crc_id", "survey", "id", "ra", "dec", "z", "z_err", "z_flag",
                                      "z_flag_homogenized"]
    assert combined["z_flag_homogenized"].notna().all()
    jades = combined[combined["survey"] == "JADES"]
    assert set(jades["z_flag"]) <= set("ABCDE")
    assert (jades["z_flag"].map({"A": 4, "B": 3, "C": 2, "D": 1, "E": 0}) == jades["z_flag_homogenized"]).all()
    assert combined.loc[combined["survey"] == "2MRS", "z_flag_homogenized"].isin([3, 4]).all()
    assert report["n_groups"] == report["n_removed"] == 0


def test_marking_groups_duplicates_and_names_the_best_of_each(marked):
    report, combined = marked
    assert len(combined) == report["n_rows_in"] and report["n_removed"] == 0
    groups = combined[combined["n_in_group"] > 1].groupby("group_id")
    assert groups.ngroups == report["n_groups"] > 20
    assert (groups.size() == groups["n_in_group"].first()).all()
    assert (groups["is_best"].sum() == 1).all()
    for group_id, group in groups:
        best = group[group["is_best"]].iloc[0]
        assert best["crc_id"] == group_id
        flags = group["z_flag_homogenized"].fillna(-1)
        assert best["z_flag_homogenized"] == flags.max()
        tied = group[flags == flags.max()]
        if tied["z_err"].notna().any():
            assert best["z_err"] == tied["z_err"].min()
    singles = combined[combined["n_in_group"] == 1]
    assert singles["is_best"].all() and (singles["group_id"] == singles["crc_id"]).all()
    assert len({survey for survey in combined.loc[combined["n_in_group"] > 1, "survey"]}) >= 4


def test_duplicates_span_surveys_and_repeats_within_one(marked):
    _, combined = marked
    in_groups = combined[combined["n_in_group"] > 1]
    surveys_per_group = in_groups.groupby("group_id")["survey"].nunique()
    assert (surveys_per_group > 1).any() and (in_groups.groupby("group_id")["survey"].size() >
                                             surveys_per_group).any()


def test_removing_leaves_no_two_rows_within_the_radius(crossmatch_sample, marked, tmp_path):
    marked_report, marked_rows = marked
    report = combine_catalogs(CrcConfig.from_params(crossmatch_sample.crc_params(
        tmp_path, combine_type="concatenate_and_remove_duplicates")))
    kept = pd.read_parquet(report["output"]["path"])
    assert _pairs_within(marked_rows, 1.0) > 0
    assert _pairs_within(kept, 1.0) == 0
    assert len(kept) == marked_rows["group_id"].nunique() == report["n_rows_in"] - report["n_removed"]
    assert sorted(kept["crc_id"]) == sorted(marked_rows.loc[marked_rows["is_best"], "crc_id"])
    assert "n_in_group" in kept.columns and "is_best" not in kept.columns


def test_duplicates_across_partition_borders_are_found(crossmatch_sample, marked, tmp_path, monkeypatch):
    """Many small partitions (with a margin cache) group exactly as one partition does."""
    _, one_partition = marked
    monkeypatch.setattr(crc_module, "PARTITION_ROWS", 400)
    report = combine_catalogs(CrcConfig.from_params(crossmatch_sample.crc_params(tmp_path)))
    partitioned = pd.read_parquet(report["output"]["path"])
    pd.testing.assert_frame_equal(partitioned, one_partition)


def test_the_report_counts_rows_flags_and_separations(marked, crossmatch_sample):
    report, combined = marked
    assert [entry["rows"] for entry in report["inputs_summary"]] == [e["rows"] for e in crossmatch_sample.surveys]
    assert sum(report["homogenized_flags"].values()) == len(combined)
    assert sum(report["by_survey"].values()) == len(combined)
    assert report["separation_arcsec"]["max"] <= 1.0 and report["separation_arcsec"]["n"] > 0
    assert report["columns_association"]["z_flag"] == "z_flag_homogenized"


def test_a_flag_value_without_translation_stops_the_run(crossmatch_sample, tmp_path):
    jades = crossmatch_sample.surveys[3]
    frame = open_catalog(jades["path"]).read().to_pandas()
    frame.loc[:4, "z_Spec_flag"] = "X"
    odd = tmp_path / "jades_odd.parquet"
    frame.to_parquet(odd)
    params = {"output_dir": str(tmp_path / "out"), "inputs": [{**jades, "path": str(odd)}]}
    params["inputs"][0].pop("rows")
    with pytest.raises(CatalogError, match=r"jades_odd.parquet, column 'z_Spec_flag': flag value\(s\) 'X' have no"):
        combine_catalogs(CrcConfig.from_params(params))
    assert not (tmp_path / "out").exists()


def test_an_inline_translation_overrides_the_table(crossmatch_sample, tmp_path):
    jades = {key: crossmatch_sample.surveys[3][key] for key in ("path", "survey", "columns")}
    inline = {"flags": {"A": 4, "B": 4, "C": 0, "D": 0, "E": 0}}
    report = combine_catalogs(CrcConfig.from_params({
        "output_dir": str(tmp_path), "combine_type": "concatenate",
        "inputs": [{**jades, "flag_translation": inline}]}))
    assert set(report["homogenized_flags"]) <= {"4", "0"}


def test_a_rerun_keeps_the_output(crossmatch_sample, tmp_path):
    params = crossmatch_sample.crc_params(tmp_path, output_format="csv")
    first = combine_catalogs(CrcConfig.from_params(params))
    written_at = (tmp_path / "combined_redshift_catalog.csv").stat().st_mtime_ns
    again = combine_catalogs(CrcConfig.from_params(params))
    assert again["kept"] and not first["kept"]
    assert (tmp_path / "combined_redshift_catalog.csv").stat().st_mtime_ns == written_at
    assert open_catalog(tmp_path / "combined_redshift_catalog.csv").num_rows == first["output"]["rows"]
