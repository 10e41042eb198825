"""Combine Redshift Catalogs: N spec-z catalogs into one, with duplicates marked or removed.

Every input is read with its own column names and survey, brought to one schema, and its quality flags are
translated to the homogenized 0–4 scale (:mod:`pzlib.crossmatch.flags`). An input with a ``survey_column`` (a
compiled multi-survey catalog) is translated row by row, each row by its own survey's translation. Rows of a
survey with flags but no translation are refused, or with ``untranslated_surveys: rank_last`` kept without a
homogenized flag. Duplicates are rows within
``radius_arcsec`` of each other, found by an lsdb self cross-match of the concatenated catalog and grouped
transitively (A near B and B near C make one group). In each group the best row is the one with the highest
homogenized flag, then the smallest redshift error, then the one from the earlier input (then the earlier
row): ``concatenate_and_mark_duplicates`` keeps every row and says which is best, and
``concatenate_and_remove_duplicates`` keeps only the best ones.

Columns of the combined catalog: ``crc_id`` (row number of the concatenation), ``survey``, ``id`` (the
survey's id, as text), ``ra``, ``dec``, ``z``, ``z_err``, ``z_flag`` (the survey's own flag, as text),
``z_flag_homogenized``; when marking, ``group_id`` (``crc_id`` of the group's best row, the row's own for a
row without duplicates), ``n_in_group`` and ``is_best``; when removing, ``n_in_group``.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa

from pzlib.catalog import CatalogError, CatalogReader
from pzlib.crossmatch.config import CrcConfig, SpeczInput
from pzlib.crossmatch.flags import FlagTranslations, flag_keys, load_flag_translations
from pzlib.crossmatch.outputs import (
    dask_threads,
    finish_report,
    input_identity,
    kept_report,
    partition_order,
    separation_lines,
    write_output,
)
from pzlib.crossmatch.specz import catalog_columns, check_specz_columns, open_specz, read_specz

log = logging.getLogger(__name__)

PARTITION_ROWS = 1_000_000
"""Rows per partition of the duplicate search; a catalog that fits in one needs no margin cache."""
MIN_MARGIN_ARCSEC = 5.0
COLUMNS_ASSOCIATION = {"id": "id", "ra": "ra", "dec": "dec", "z": "z", "z_err": "z_err",
                       "z_flag": "z_flag_homogenized", "survey": "survey"}
"""PZ Server column roles of the combined catalog."""


def check_inputs(config: CrcConfig) -> list[dict]:
    """Check every input's file and columns before any work; return ``[{path, survey, format, rows}]`` (with
    ``surveys``, rows per survey, for an input with a survey column, and ``ranked_last``, rows per untranslated
    survey, when there are any).

    Raises
    ------
    ValueError
        Starting with the field at fault: ``inputs[2].path`` (missing or unreadable), ``inputs[0].columns.z``
        (no such column), ``inputs[1].columns.z_err`` (a flag condition of the survey needs it),
        ``inputs[0].survey_column`` (no such column, or surveys without a translation to refuse).
    """
    translations = load_flag_translations(config.translation_file)
    plan = []
    for index, entry in enumerate(config.inputs):
        where = f"inputs[{index}]"
        reader = open_specz(entry.path, f"{where}.path")
        check_specz_columns(reader, entry.columns, f"{where}.columns")
        if entry.survey_column is not None and entry.survey_column not in reader.column_names:
            available = ", ".join(catalog_columns(reader.column_names))
            raise ValueError(f"{where}.survey_column: column {entry.survey_column!r} is not in {reader.path} "
                             f"(has: {available})")
        rows_per_survey = (row_surveys(reader, entry).value_counts(sort=False).to_dict()
                           if entry.survey_column else {entry.survey: reader.num_rows})
        ranked_last = {}
        for survey, rows in rows_per_survey.items():
            translation = translations.lookup(survey, entry.flag_translation)
            if translation is None:
                if entry.columns.z_flag:
                    ranked_last[survey] = int(rows)
                continue
            for column in sorted(translation.needs_columns()):
                if getattr(entry.columns, column) is None:
                    raise ValueError(f"{where}.columns.{column}: the flag translation of survey {survey!r} "
                                     f"grades rows by {column}; name the column that holds it")
        if ranked_last and entry.untranslated_surveys == "refuse":
            field_name = "survey_column" if entry.survey_column else "survey"
            raise ValueError(f"{where}.{field_name}: {config.untranslated_message(sorted(ranked_last))}")
        found = {"path": str(reader.path), "survey": entry.survey, "format": reader.format, "rows": reader.num_rows}
        if entry.survey_column:
            found["surveys"] = {survey: int(rows) for survey, rows in sorted(rows_per_survey.items())}
        if ranked_last:
            found["ranked_last"] = dict(sorted(ranked_last.items()))
        plan.append(found)
    return plan


def row_surveys(reader: CatalogReader, entry: SpeczInput) -> pd.Series:
    """The survey of each row of an input with a survey column, as text; a blank one is the input's ``survey``."""
    values = reader.read([entry.survey_column]).column(0).to_pandas()
    # Survey names as text, the way flags are: 3, 3.0 and b"3" are one survey, a blank one is none.
    return flag_keys(values).astype("string").fillna(entry.survey)


def combine_catalogs(config: CrcConfig) -> dict:
    """Combine the request's spec-z catalogs; write the combined catalog and its report.

    Returns
    -------
    dict
        The report (also written to ``config.report_path``): ``output`` (path, format, rows, columns),
        ``columns_association``, ``inputs_summary`` (rows per input), ``n_groups`` and ``n_duplicate_rows``
        (groups of two or more rows, and the rows in them), ``n_removed``, ``homogenized_flags`` (counts in the
        output), ``by_survey``, ``separation_arcsec`` (of the duplicate pairs), ``kept``.

    Raises
    ------
    ValueError
        A bad request (see :func:`check_inputs`); :class:`pzlib.catalog.CatalogError` for bad catalog values,
        e.g. a flag value the survey's translation does not know.

    Examples
    --------
    >>> config = CrcConfig(output_dir="out", inputs=[  # doctest: +SKIP
    ...     {"path": "2dfgrs.csv", "survey": "2DFGRS", "columns": {"z_flag": "quality"}},
    ...     {"path": "jades.parquet", "survey": "JADES", "columns": {"z": "z_Spec", "z_flag": "z_Spec_flag"}}])
    >>> combine_catalogs(config)["n_duplicate_rows"]  # doctest: +SKIP
    112
    """
    plan = check_inputs(config)
    inputs = {f"inputs[{index}]": input_identity(entry["path"]) for index, entry in enumerate(plan)}
    fingerprint = config.fingerprint()
    kept = kept_report(config.report_path, fingerprint, inputs)
    if kept is not None:
        log.info("kept the combined catalog %s: same request and inputs, output verified", kept["output"]["path"])
        return {**kept, "kept": True}
    started = time.perf_counter()
    translations = load_flag_translations(config.translation_file)
    frames = []
    for index, entry in enumerate(config.inputs):
        frame = canonical_rows(entry, index, translations)
        plan[index]["z_err_negative"] = int(frame.attrs["z_err_negative"])
        frames.append(frame)
    combined = pd.concat(frames, ignore_index=True)
    combined.insert(0, "crc_id", np.arange(len(combined), dtype=np.int64))
    duplicate_separations = np.empty(0)
    if config.combine_type != "concatenate":
        labels, duplicate_separations = duplicate_groups(combined, config.radius_arcsec, config.n_neighbors,
                                                         config.workers)
        combined = _rank_groups(combined, labels)
    n_groups = n_duplicate_rows = 0
    if "group_id" in combined:
        in_groups = combined["n_in_group"] > 1
        n_groups, n_duplicate_rows = int(combined.loc[in_groups, "group_id"].nunique()), int(in_groups.sum())
    output = _output_rows(combined, config.combine_type)
    table = pa.Table.from_pandas(output, preserve_index=False)
    write_output(table, config.output_path, config.output_format, "ra", "dec")
    flag_counts = output["z_flag_homogenized"].value_counts(dropna=False)
    details = {
        "combine_type": config.combine_type,
        "inputs_summary": plan,
        "n_rows_in": len(combined),
        "n_groups": n_groups,
        "n_duplicate_rows": n_duplicate_rows,
        "n_removed": len(combined) - len(output),
        "homogenized_flags": {("null" if pd.isna(flag) else str(int(flag))): int(count)
                              for flag, count in sorted(flag_counts.items(), key=lambda item: _flag_order(item[0]))},
        "by_survey": {survey: int(count) for survey, count in output["survey"].value_counts(sort=False).items()},
    }
    return finish_report("combine_redshift_catalogs", config, table, COLUMNS_ASSOCIATION, details,
                         duplicate_separations, started, fingerprint, inputs, report_lines, log)


def _flag_order(flag) -> int:
    return 99 if pd.isna(flag) else -int(flag)


def canonical_rows(entry: SpeczInput, index: int, translations: FlagTranslations) -> pd.DataFrame:
    """One input's rows in the combined schema, flags homogenized (``input`` holds ``index`` for ranking).

    Each row is translated by its survey's translation (the input's, or with a survey column the row's own);
    a survey without one leaves its rows without a homogenized flag (:func:`check_inputs` refused them unless
    asked to rank them last). A negative redshift error (a common "unknown" marker) is taken as unknown;
    ``attrs["z_err_negative"]`` counts them.

    Raises
    ------
    CatalogError
        Bad positions or redshifts (see :func:`pzlib.crossmatch.specz.read_specz`), a non-numeric z_err, or
        flag values the survey's translation does not know.
    """
    reader = open_specz(entry.path, f"inputs[{index}].path")
    columns = entry.columns
    frame = read_specz(reader, columns)
    rows = len(frame)
    z_err = pd.Series(np.nan, index=frame.index)
    negative = 0
    if columns.z_err:
        values = frame[columns.z_err]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise CatalogError(reader.path, f"z_err must be numeric, found {values.dtype}", columns.z_err)
        z_err = pd.Series(values.to_numpy(dtype=float, na_value=np.nan), index=frame.index)
        negative = int((z_err < 0).sum())
        z_err = z_err.mask(z_err < 0)
    surveys = (pd.Series(row_surveys(reader, entry).to_numpy(), index=frame.index, dtype="string")
               if entry.survey_column else pd.Series([entry.survey] * rows, dtype="string", index=frame.index))
    canonical = pd.DataFrame({
        "survey": surveys,
        "id": (frame[columns.id].astype("string") if columns.id
               else pd.Series(pd.NA, index=frame.index, dtype="string")),
        "ra": frame[columns.ra].to_numpy(dtype=float),
        "dec": frame[columns.dec].to_numpy(dtype=float),
        "z": frame[columns.z].to_numpy(dtype=float),
        "z_err": z_err,
        "z_flag": (flag_keys(frame[columns.z_flag]).astype("string") if columns.z_flag
                   else pd.Series(pd.NA, index=frame.index, dtype="string")),
    })
    homogenized = pd.Series(pd.NA, index=frame.index, dtype="Int8")
    for survey, rows_of_survey in canonical.groupby("survey", sort=True).groups.items():
        translation = translations.lookup(survey, entry.flag_translation)
        if translation is None:
            continue
        flags, unmatched = translation.homogenize(canonical.loc[rows_of_survey])
        if unmatched:
            shown = ", ".join(repr(value) for value in unmatched[:10])
            raise CatalogError(reader.path, f"flag value(s) {shown} have no translation for survey "
                                            f"{survey!r}; add them to its flags or give it a default",
                               columns.z_flag)
        homogenized.loc[rows_of_survey] = flags
    canonical["z_flag_homogenized"] = homogenized
    canonical["input"] = np.int32(index)
    canonical.attrs["z_err_negative"] = negative
    return canonical.reset_index(drop=True)


def duplicate_groups(combined: pd.DataFrame, radius_arcsec: float, n_neighbors: int,
                     workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(group label of every row, separations of the duplicate pairs in arcsec): an lsdb self cross-match
    within the radius, pairs joined transitively into groups (connected components)."""
    import lsdb
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = len(combined)
    positions = combined[["crc_id", "ra", "dec"]]
    # One partition needs no margin cache; building one costs more than the whole search on a small catalog.
    # A margin narrower than 5" is no cheaper: lsdb's margin pixels get finer (and far more numerous) with it.
    margin = max(radius_arcsec, MIN_MARGIN_ARCSEC) if rows > PARTITION_ROWS else None
    with dask_threads(workers), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Right catalog does not have a margin cache")
        order = partition_order(positions["ra"].to_numpy(), positions["dec"].to_numpy(), PARTITION_ROWS)
        catalog = lsdb.from_dataframe(positions, ra_column="ra", dec_column="dec", partition_rows=PARTITION_ROWS,
                                      highest_order=order, margin_threshold=margin, catalog_name="combined")
        pairs = catalog.crossmatch(catalog, n_neighbors=min(n_neighbors, rows), radius_arcsec=radius_arcsec,
                                   suffixes=("_a", "_b"), suffix_method="all_columns",
                                   log_changes=False).compute(progress_bar=False)
    first = pairs["crc_id_a"].to_numpy()
    second = pairs["crc_id_b"].to_numpy()
    distinct = first != second
    first, second = first[distinct], second[distinct]
    graph = coo_matrix((np.ones(first.size, dtype=np.int8), (first, second)), shape=(rows, rows))
    _, labels = connected_components(graph, directed=False)
    # Each pair was found from both of its rows: count it once.
    separations = pairs["_dist_arcsec"].to_numpy()[distinct][first < second]
    return labels, separations


def _rank_groups(combined: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """``group_id``, ``n_in_group`` and ``is_best`` from the group labels and the ranking rules."""
    ranking = pd.DataFrame({
        "label": labels,
        "flag": combined["z_flag_homogenized"].astype("float").fillna(-1.0).to_numpy(),
        "z_err": combined["z_err"].fillna(np.inf).to_numpy(),
        "input": combined["input"].to_numpy(),
        "crc_id": combined["crc_id"].to_numpy(),
    })
    ranked = ranking.sort_values(["label", "flag", "z_err", "input", "crc_id"],
                                 ascending=[True, False, True, True, True], kind="stable")
    best = ranked.drop_duplicates("label").set_index("label")["crc_id"]
    group_id = best.reindex(labels).to_numpy()
    sizes = np.bincount(labels)[labels]
    return combined.assign(group_id=group_id, n_in_group=sizes.astype(np.int32),
                           is_best=group_id == combined["crc_id"].to_numpy())


def _output_rows(combined: pd.DataFrame, combine_type: str) -> pd.DataFrame:
    columns = ["crc_id", "survey", "id", "ra", "dec", "z", "z_err", "z_flag", "z_flag_homogenized"]
    if combine_type == "concatenate_and_mark_duplicates":
        return combined[[*columns, "group_id", "n_in_group", "is_best"]]
    if combine_type == "concatenate_and_remove_duplicates":
        return combined.loc[combined["is_best"], [*columns, "n_in_group"]].reset_index(drop=True)
    return combined[columns]


def report_lines(report: dict) -> list[str]:
    """The run's outcome as text lines for a task log."""
    lines = [f'{report["n_rows_in"]:,} rows from {len(report["inputs_summary"])} catalog(s) '
             f'({report["combine_type"]}) → {report["output"]["rows"]:,} rows in {report["output"]["path"]}']
    if report["combine_type"] != "concatenate":
        lines.append(f'duplicates within {report["radius_arcsec"]:g}": {report["n_groups"]:,} group(s) holding '
                     f'{report["n_duplicate_rows"]:,} rows; {report["n_removed"]:,} removed')
        lines += separation_lines(report["separation_arcsec"])
    flags = ", ".join(f"{flag}: {count:,}" for flag, count in report["homogenized_flags"].items())
    return [*lines, f"homogenized flags: {flags}"]
