"""Combine Redshift Catalogs over catalogs as users have them: a compiled catalog of several surveys translated
row by row by its survey column, and a survey without a flag translation refused or ranked last, as asked."""

from __future__ import annotations

import pandas as pd
import pytest

from pzlib.crossmatch import CrcConfig, TsmConfig
from pzlib.crossmatch.crc import check_inputs, combine_catalogs


@pytest.fixture
def compiled(tmp_path) -> str:
    """A compiled spec-z catalog: rows of VVDS, JADES, SDSS, a survey without translation and a blank one.

    Rows 0 and 1 (VVDS flag 4, unknown survey flag 9) are the same object, as are rows 2 and 3 (JADES grade A,
    unknown survey flag 9); every other row stands alone."""
    frame = pd.DataFrame({
        "name": [f"s{index}" for index in range(7)],
        "ra": [10.0, 10.0, 20.0, 20.0, 30.0, 40.0, 50.0],
        "dec": [-5.0, -5.0, -6.0, -6.0, -7.0, -8.0, -9.0],
        "zspec": [0.3, 0.31, 0.5, 0.52, 0.7, 0.9, 1.1],
        "qual": ["4", "9", "A", "9", "0", "3", "16"],
        "origin": ["VVDS", "MyOwnSurvey", " jades ", "MyOwnSurvey", "SDSS", None, "SDSS"],
    })
    path = tmp_path / "compiled.parquet"
    frame.to_parquet(path)
    return str(path)


def _params(path: str, output_dir, **entry) -> dict:
    return {"output_dir": str(output_dir), "combine_type": "concatenate_and_mark_duplicates",
            "inputs": [{"path": path, "survey": "VVDS", "survey_column": "origin",
                        "columns": {"id": "name", "z": "zspec", "z_flag": "qual"}, **entry}]}


def test_a_survey_column_translates_each_row_by_its_own_survey(compiled, tmp_path):
    report = combine_catalogs(CrcConfig.from_params(_params(compiled, tmp_path / "out",
                                                            untranslated_surveys="rank_last")))
    rows = pd.read_parquet(report["output"]["path"]).set_index("id")
    # VVDS 4 → 4, JADES A → 4, SDSS ZWARNING 0 → 4 and 16 → 0 (its default), the blank survey is the input's
    # (VVDS: 3 → 3), and the untranslated survey's rows have no homogenized flag.
    assert rows["z_flag_homogenized"].to_dict() == {"s0": 4, "s1": None, "s2": 4, "s3": None, "s4": 4, "s5": 3,
                                                    "s6": 0}
    assert rows["survey"].tolist() == ["VVDS", "MyOwnSurvey", "jades", "MyOwnSurvey", "SDSS", "VVDS", "SDSS"]
    [summary] = report["inputs_summary"]
    assert summary["surveys"] == {"MyOwnSurvey": 2, "SDSS": 2, "VVDS": 2, "jades": 1}
    assert summary["ranked_last"] == {"MyOwnSurvey": 2}


def test_rows_of_an_untranslated_survey_rank_after_every_graded_duplicate(compiled, tmp_path):
    report = combine_catalogs(CrcConfig.from_params(_params(compiled, tmp_path / "out",
                                                            untranslated_surveys="rank_last")))
    rows = pd.read_parquet(report["output"]["path"]).set_index("id")
    assert report["n_groups"] == 2
    assert rows.loc[["s0", "s1", "s2", "s3"], "is_best"].tolist() == [True, False, True, False]
    assert rows.loc["s1", "group_id"] == rows.loc["s0", "crc_id"]


def test_an_untranslated_survey_is_refused_with_both_ways_on(compiled, tmp_path):
    config = CrcConfig.from_params(_params(compiled, tmp_path / "out"))
    with pytest.raises(ValueError) as refused:
        check_inputs(config)
    message = str(refused.value)
    assert message.startswith("inputs[0].survey_column: no flag translation for survey(s) 'MyOwnSurvey' in the "
                              "platform's flag translations")
    assert "send a flag translation file" in message and "untranslated_surveys to rank_last" in message
    assert "include" not in message  # no server path
    with pytest.raises(ValueError, match="^inputs\\[0\\].survey_column: no flag translation"):
        combine_catalogs(config)
    assert not (tmp_path / "out").exists()


def test_a_flag_translation_file_for_the_survey_makes_it_graded(compiled, tmp_path):
    flags = tmp_path / "mine.yaml"
    flags.write_text('surveys:\n  MYOWNSURVEY:\n    flags: {"9": 2}\n  VVDS:\n    flags: {"3": 3, "4": 4}\n'
                     '  JADES:\n    flags: {"A": 4}\n  SDSS:\n    flags: {"0": 4}\n    default: 0\n')
    report = combine_catalogs(CrcConfig.from_params({**_params(compiled, tmp_path / "out"),
                                                     "flag_translation_file": str(flags)}))
    rows = pd.read_parquet(report["output"]["path"]).set_index("id")
    assert rows.loc[["s1", "s3"], "z_flag_homogenized"].tolist() == [2, 2]
    assert "ranked_last" not in report["inputs_summary"][0]


def test_a_catalog_named_as_one_likes_is_refused_or_ranked_last_as_asked(compiled, tmp_path):
    entry = {"path": compiled, "survey": "My spec-z", "columns": {"id": "name", "z": "zspec", "z_flag": "qual"}}
    with pytest.raises(ValueError) as refused:
        CrcConfig.from_params({"output_dir": str(tmp_path), "inputs": [entry]})
    assert str(refused.value).startswith("inputs[0].survey: no flag translation for survey(s) 'My spec-z'")
    assert "rank_last" in str(refused.value)
    report = combine_catalogs(CrcConfig.from_params({
        "output_dir": str(tmp_path), "inputs": [{**entry, "untranslated_surveys": "rank_last"}]}))
    rows = pd.read_parquet(report["output"]["path"])
    assert rows["z_flag_homogenized"].isna().all() and set(rows["survey"]) == {"My spec-z"}
    assert report["inputs_summary"][0]["ranked_last"] == {"My spec-z": 7}


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"survey_column": "missing"}, r"^inputs\[0\].survey_column: column 'missing' is not in .*compiled.parquet"),
        ({"survey_column": "qual"}, r"^inputs\[0\].survey_column: column 'qual' already holds another role"),
        ({"flag_translation": {"flags": {"4": 4}}}, r"^inputs\[0\].flag_translation: an input of several surveys"),
        ({"untranslated_surveys": "ignore"}, r"^inputs\[0\].untranslated_surveys: must be one of refuse, rank_last"),
    ],
)
def test_a_bad_survey_column_request_names_its_field(compiled, tmp_path, entry, problem):
    with pytest.raises(ValueError, match=problem):
        check_inputs(CrcConfig.from_params(_params(compiled, tmp_path / "out", **entry)))


def test_a_pz_server_input_with_a_survey_role_becomes_an_input_of_several_surveys():
    """The PZ Server hands each input's column roles; the survey role is CRC's survey column, TSM needs none."""
    roles = {"ra": "ra", "dec": "dec", "z": "zspec", "z_flag": "qual", "survey": "origin"}
    specz = {"path": "/data/mine.parquet", "survey": "My spec-z", "columns": roles}
    params = CrcConfig.params_from_pzserver_request({"untranslated_surveys": "rank_last"}, inputs=[specz],
                                                    release=None, output_dir="/out")
    [entry] = params["inputs"]
    assert entry["survey_column"] == "origin" and "survey" not in entry["columns"]
    assert entry["untranslated_surveys"] == "rank_last"
    assert CrcConfig.params_from_pzserver_request({}, inputs=[specz], release=None,
                                                  output_dir="/out")["inputs"][0]["untranslated_surveys"] == "refuse"
    with pytest.raises(ValueError, match="^param.untranslated_surveys: must be one of refuse, rank_last"):
        CrcConfig.params_from_pzserver_request({"untranslated_surveys": "drop"}, inputs=[specz], release=None,
                                               output_dir="/out")
    tsm = TsmConfig.params_from_pzserver_request(
        {}, inputs=[specz], release={"name": "dp1", "object_catalog": "/data/dp1", "object_column_map": None},
        output_dir="/out")
    assert tsm["specz_columns"] == {"ra": "ra", "dec": "dec", "z": "zspec", "z_flag": "qual"}
