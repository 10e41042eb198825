"""pzlib.estimate (stages II–III): RAIL's own estimators, streamed; same answers as stock RAIL; resumable."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow.parquet as pq
import pytest
from fixtures.damage import flip_bit_in_data_page

from pzlib import pdf
from pzlib.bench.compare import run_stock
from pzlib.catalog import CatalogError, open_catalog, write_parquet
from pzlib.estimate import (
    EstimateConfig,
    PartitionEstimator,
    estimate_partition,
    installed_estimators,
    resolve_estimator,
    train,
)
from pzlib.preprocess import PreprocessConfig, clean_batch


def test_builtin_and_rail_class_names_resolve():
    assert resolve_estimator("fzboost").estimator.__name__ == "FlexZBoostEstimator"
    assert resolve_estimator("bpz").informer.__name__ == "BPZliteInformer"
    assert resolve_estimator("TrainZ").estimator.__name__ == "TrainZEstimator"
    assert "TrainZEstimator" in installed_estimators()
    with pytest.raises(ValueError, match="unknown estimator 'nosuch'.*installed: fzboost, bpz"):
        resolve_estimator("nosuch")


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="batch_rows must be positive"):
        EstimateConfig("bpz", batch_rows=0)
    with pytest.raises(ValueError, match="ref_band 'i' is not one of the bands"):
        EstimateConfig("bpz", bands=("g", "r"))
    with pytest.raises(ValueError, match="engine must be 'fast' or 'rail'"):
        EstimateConfig("bpz", engine="gpu")


def test_the_batch_size_is_in_the_fingerprint_only_where_it_changes_the_answers():
    """DNF cuts every object's neighbours to the most any object of its batch has: another batch size is
    another output. The others' answers do not depend on the batching."""
    assert EstimateConfig("dnf", batch_rows=5_000).fingerprint() != EstimateConfig("dnf").fingerprint()
    assert EstimateConfig("knn", batch_rows=5_000).fingerprint() == EstimateConfig("knn").fingerprint()
    assert EstimateConfig("dnf", batch_rows=5_000).model_fingerprint() == EstimateConfig("dnf").model_fingerprint()


def test_tpz_training_is_reproducible(dc2_paths, dc2_300, tmp_path):
    """pz-rail-tpz draws its random realizations and bootstrap samples from a generator nobody seeds; trained
    under its seed, two models give the same answers (they did not)."""
    config = EstimateConfig("tpz", rail_options={"n_trees": 2, "n_random": 2})
    tables = []
    for attempt in ("one", "two"):
        model = train(dc2_300, tmp_path / f"tpz_{attempt}.pkl", config)
        output = estimate_partition(dc2_300, tmp_path / f"tpz_{attempt}.parquet", PartitionEstimator(model, config),
                                    cleaning=PreprocessConfig())
        tables.append(pq.read_table(output))
    assert tables[0].equals(tables[1])


@pytest.mark.parametrize("estimator, engine", [("bpz", "fast"), ("fzboost", "fast"), ("bpz", "rail")])
def test_zmode_equals_stock_rail_with_the_same_model(estimator, engine, dc2_run, dc2_slice, tmp_path):
    spec, _ = dc2_run
    model = spec.model_path(estimator)
    stock = run_stock(estimator, model, dc2_slice, tmp_path / "stock.hdf5")
    ours = estimate_partition(dc2_slice, tmp_path / "ours.parquet",
                              PartitionEstimator(model, EstimateConfig(estimator, batch_rows=700, engine=engine)),
                              cleaning=PreprocessConfig())
    zmode = pq.read_table(ours).column("zmode").to_numpy()
    assert zmode.size == stock["rows"] == 2000
    assert np.max(np.abs(zmode - np.asarray(stock["zmode"]))) <= 1e-6


@pytest.mark.parametrize("estimator", ["bpz", "fzboost"])
def test_a_fast_path_gives_the_same_table_whatever_its_chunks(estimator, dc2_run, dc2_slice, monkeypatch):
    """A fast path estimates a batch FAST_CHUNK_ROWS rows at a time: the chunks do not change a bit."""
    import pzlib.estimate

    spec, _ = dc2_run
    estimator = PartitionEstimator(spec.model_path(estimator), EstimateConfig(estimator))
    reader = open_catalog(dc2_slice)
    batch = clean_batch(next(reader.iter_batches(PreprocessConfig().input_columns(reader.column_names), 2000)),
                        PreprocessConfig())
    whole = estimator.estimate_batch(batch)
    monkeypatch.setattr(pzlib.estimate, "FAST_CHUNK_ROWS", 333)
    assert estimator.estimate_batch(batch).equals(whole)


def test_photoz_table_columns_pdfs_and_qp_round_trip(dc2_run):
    spec, results = dc2_run
    output = next((spec.output_path / "bpz" / "partitions").glob("part-*.parquet"))
    table = pq.read_table(output)
    assert table.column_names == ["id", "zmode", "zmean", "zmedian", "z_p16", "z_p84", "pdf"]
    assert pdf.storage_metadata(table.schema)["representation"] == "cdf8"
    cdfs = pdf.cdf_on_grid(table)
    assert cdfs.shape[1] == pdf.grid_from_schema(table.schema).size == 301
    assert np.all(np.diff(cdfs, axis=1) >= 0)
    np.testing.assert_allclose(cdfs[:, -1], 1.0)
    p16, median, p84 = (table.column(c).to_numpy() for c in ("z_p16", "zmedian", "z_p84"))
    assert np.all(p16 <= median) and np.all(median <= p84)
    ensemble = pdf.table_to_ensemble(table)
    assert ensemble.npdf == table.num_rows
    np.testing.assert_allclose(ensemble.median().reshape(-1), median, atol=0.011)
    assert output.stat().st_size / table.num_rows <= 100  # bytes per object, id + point estimates + PDF


def test_finished_output_is_skipped_and_a_new_model_recomputes(dc2_run, dc2_300, tmp_path):
    spec, _ = dc2_run
    estimator = PartitionEstimator(spec.model_path("bpz"), EstimateConfig("bpz"))
    output = estimate_partition(dc2_300, tmp_path / "out.parquet", estimator, cleaning=PreprocessConfig())
    first = output.stat().st_mtime_ns
    estimate_partition(dc2_300, output, estimator, cleaning=PreprocessConfig())
    assert output.stat().st_mtime_ns == first
    estimator.model_sha256 = "another model"
    estimate_partition(dc2_300, output, estimator, cleaning=PreprocessConfig())
    assert output.stat().st_mtime_ns != first


def test_failed_estimate_keeps_the_earlier_output(dc2_run, dc2_300, tmp_path):
    spec, _ = dc2_run
    estimator = PartitionEstimator(spec.model_path("bpz"), EstimateConfig("bpz"))
    output = estimate_partition(dc2_300, tmp_path / "out.parquet", estimator, cleaning=PreprocessConfig())
    before = output.read_bytes()
    broken = write_parquet(pq.read_table(dc2_300).drop_columns(["mag_z_lsst"]), tmp_path / "broken.parquet")
    with pytest.raises(CatalogError, match="broken.parquet, column 'mag_z_lsst'"):
        estimate_partition(broken, output, estimator, cleaning=PreprocessConfig())
    assert output.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.parquet", "out.parquet"]


def test_any_installed_rail_estimator_by_name(dc2_paths, dc2_300, tmp_path):
    config = EstimateConfig("TrainZ")
    model = train(dc2_paths[0], tmp_path / "trainz.pkl", config)
    output = estimate_partition(dc2_300, tmp_path / "trainz.parquet", PartitionEstimator(model, config),
                                cleaning=PreprocessConfig())
    table = pq.read_table(output)
    assert table.num_rows == 300
    assert np.all(np.isfinite(table.column("zmode").to_numpy()))


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained model"):
        PartitionEstimator(tmp_path / "absent.pkl", EstimateConfig("bpz"))


@pytest.mark.parametrize("recorded", [True, False], ids=["sha256 record", "page checksums"])
def test_a_flipped_bit_in_a_finished_output_is_found_and_the_output_recomputed(recorded, dc2_run, dc2_300, tmp_path,
                                                                              caplog):
    spec, _ = dc2_run
    estimator = PartitionEstimator(spec.model_path("bpz"), EstimateConfig("bpz"))
    record = tmp_path / "checksums" / "out.parquet.sha256" if recorded else None
    output = estimate_partition(dc2_300, tmp_path / "out.parquet", estimator, cleaning=PreprocessConfig(),
                                checksum_path=record)
    undamaged = output.read_bytes()
    flip_bit_in_data_page(output, "zmean")
    assert pq.read_metadata(output).num_rows == 300  # footer, rows and provenance as before

    with caplog.at_level(logging.INFO, logger="pzlib.estimate"):
        estimate_partition(dc2_300, output, estimator, cleaning=PreprocessConfig(), checksum_path=record)

    detected = "failed its checksum" if recorded else "failed its page checksums"
    assert f"output {output} {detected}" in caplog.text and "; recomputing" in caplog.text
    assert "kept verified output" not in caplog.text
    assert output.read_bytes() == undamaged


def test_an_output_without_its_recorded_checksum_is_recomputed(dc2_run, dc2_300, tmp_path, caplog):
    spec, _ = dc2_run
    estimator = PartitionEstimator(spec.model_path("bpz"), EstimateConfig("bpz"))
    record = tmp_path / "checksums" / "out.parquet.sha256"
    output = estimate_partition(dc2_300, tmp_path / "out.parquet", estimator, cleaning=PreprocessConfig(),
                                checksum_path=record)
    written = record.read_text()
    assert written.endswith("  out.parquet\n")
    record.unlink()  # e.g. a writer killed between its rename and the record, in an older version

    with caplog.at_level(logging.INFO, logger="pzlib.estimate"):
        estimate_partition(dc2_300, output, estimator, cleaning=PreprocessConfig(), checksum_path=record)

    assert f"output {output} has no recorded checksum" in caplog.text
    assert record.read_text() == written
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pzlib.estimate"):
        estimate_partition(dc2_300, output, estimator, cleaning=PreprocessConfig(), checksum_path=record)
    assert f"kept verified output {output}" in caplog.text


def test_a_model_whose_bytes_changed_is_trained_again(dc2_paths, tmp_path, caplog):
    config = EstimateConfig("TrainZ")
    model = train(dc2_paths[0], tmp_path / "trainz.pkl", config)
    trained = model.read_bytes()
    model.write_bytes(trained[:-1] + bytes([trained[-1] ^ 0x01]))

    with caplog.at_level(logging.INFO, logger="pzlib.estimate"):
        train(dc2_paths[0], model, config)

    assert f"model {model} failed its checksum" in caplog.text and "training it again" in caplog.text
    assert model.read_bytes() == trained
