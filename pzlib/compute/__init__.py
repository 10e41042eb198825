"""pz_compute: a release run, stage by stage — what the ``pz`` command and the ``pz_compute`` DAG call.

A run is fully described by a :class:`RunSpec` (JSON-serializable params); the same params reproduce the same
outputs, and every stage skips what already exists and verifies by content: a file is kept only when its bytes
still have the SHA-256 recorded when it was written; any other is made again, and the log says why. Layout of a
run folder::

    OUTPUT/stage1/part-NNNNN.parquet           cleaned, column-mapped partitions (stage I)
    OUTPUT/stage1/_stage1.json                 their input, config, rows and SHA-256s (stage I)
    OUTPUT/models/ESTIMATOR.pkl[.json]          trained RAIL models, with what they were trained on and their
                                                SHA-256 (stage II)
    OUTPUT/ESTIMATOR/partitions/part-NNNNN.parquet   photo-z per partition (stage III)
    OUTPUT/ESTIMATOR/checksums/part-NNNNN.parquet.sha256   the SHA-256 of each, recorded as it was written
                                                (``sha256sum -c`` reads it from the partitions folder)
    OUTPUT/ESTIMATOR/photoz/                   the assembled photo-z catalog: HATS when the input has sky
                                                positions, a Parquet dataset otherwise (stage IV)
    OUTPUT/ESTIMATOR/metrics.json               summary: catalog, rows, metrics against the true redshifts
    OUTPUT/ESTIMATOR/validation/                 validation report (science metrics, GX results, plots), when
                                                the input has true redshifts

Stage IV of the ``pz_compute`` DAG then publishes each validation report in the PZ Server (``publish_validation``):
a ``validation_results`` product named ``RELEASE ESTIMATOR validation``, owned by the ``owner`` param's user or
by the platform's own user ``pz-compute``; publishing again (a cleared task, a rerun of the release) replaces the
files of that product instead of adding one. ``run`` (the ``pz run`` command) publishes nothing.

Great Expectations suites (``include/expectations/``) check every stage I partition, the training set, every
stage III output (before it gets its final name, so a failed check leaves nothing to be skipped on rerun)
and the assembled catalog; a failed expectation raises ``ValidationError`` listing each failure.

Modules: :mod:`~pzlib.compute.spec` (the run's params, :class:`~pzlib.compute.spec.RunSpec`; their JSON schema
in :mod:`~pzlib.compute.params`, which the DAG file loads at parse time), :mod:`~pzlib.compute.acquire` (stage I),
:mod:`~pzlib.compute.train` (stage II), :mod:`~pzlib.compute.estimate_partitions` (stage III, one partition),
:mod:`~pzlib.compute.estimate_array` and :mod:`~pzlib.compute.worker` (stage III as job arrays, sharing the files
of :mod:`~pzlib.compute.array_plan`), :mod:`~pzlib.compute.assemble` and :mod:`~pzlib.compute.publish` (stage
IV), :mod:`~pzlib.compute.run` (all four on this machine). This ``__init__`` imports nothing, so that loading
the params' schema stays cheap.
"""
