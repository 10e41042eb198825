"""Stage IV of the ``pz_compute`` DAG: each estimator's validation report and photo-z catalog published in the PZ
Server, replaced on a rerun.

What the release pipeline publishes is official when its owner is an admin: the platform user ``pz-compute`` is
one (the default owner); products of an ``owner`` param naming a regular user are that user's own.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from pzlib.catalog import open_catalog
from pzlib.compute.provenance import run_provenance
from pzlib.compute.spec import RunSpec
from pzlib.compute.timings import estimate_seconds
from pzlib.config import load_settings
from pzlib.estimate import photoz_column_descriptions
from pzlib.registry import AlreadyExists, NotFound, ProductFilter, ProductStatus, Registry, Terms, User
from pzlib.registry.registration import ProductFiles
from pzlib.registry.reports import REPORT_PRODUCT_TYPE, publish_report, replace_report
from pzlib.registry.schema import FileRole
from pzlib.validate.comparison import EstimatorResult, build_comparison

CATALOG_PRODUCT_TYPE = "photoz_estimates"

PLATFORM_USER = "pz-compute"
"""PZ Server user owning what a run publishes when its ``owner`` param names nobody; created on first use."""

PIPELINE_NAME = "pz_compute"
"""``provenance["pipeline"]`` of the products a run publishes: what marks a product as a run's own."""


def report_owner(spec: RunSpec, registry: Registry) -> User:
    """The PZ Server user owning what the run publishes: the ``owner`` param's (which must exist), or the
    platform user ``pz-compute``, created on first use.

    Raises
    ------
    ValueError
        ``owner`` names no user of the registry.
    """
    if spec.owner:
        try:
            return registry.get_user(spec.owner)
        except NotFound:
            raise ValueError(
                f"owner: the PZ Server has no user {spec.owner!r}; that user logs in to the PZ Server once (or an "
                f"admin runs 'pz token create {spec.owner}'), or leave owner empty to publish as {PLATFORM_USER!r}"
            ) from None
    try:
        platform_user = registry.get_user(PLATFORM_USER)
    except NotFound:
        try:
            platform_user = registry.create_user(PLATFORM_USER, is_admin=True, first_name="pz_compute",
                                                 last_name="pipeline")
        except AlreadyExists:  # another estimator's task created it first
            platform_user = registry.get_user(PLATFORM_USER)
    if not platform_user.is_admin:  # made by an earlier version, before the pipeline's products were official
        platform_user = registry.update_user(PLATFORM_USER, is_admin=True)
    return platform_user


def check_publishing(spec: RunSpec, files: ProductFiles | None = None) -> str | None:
    """Before any work: the username that will own what the run publishes (None when ``publish`` is off), so
    that an unknown ``owner`` or an unreachable registry fails the run at its start, not after stage III.

    Raises
    ------
    ValueError
        As ``report_owner``.
    """
    if not spec.publish:
        return None
    files = files or ProductFiles.from_settings(load_settings())
    return report_owner(spec, files.registry).username


def publish_validation(spec: RunSpec, estimator: str, files: ProductFiles | None = None, *,
                       triggered_by: str | None = None, run_id: str | None = None) -> dict | None:
    """Stage IV: publish the estimator's validation report (written by ``assemble``) in the PZ Server.

    The product is a ``validation_results`` product named by ``RunSpec.report_display_name``, owned by
    ``report_owner``, with the run's params as provenance. When the owner already has the run's product (same
    release and estimator, published by this pipeline), its files are replaced and it keeps its id: clearing the
    task or rerunning the release never makes a second product.

    Parameters
    ----------
    spec : RunSpec
        The run; nothing is published when ``spec.publish`` is false.
    estimator : str
        One of ``spec.estimators``, assembled already.
    files : ProductFiles, optional
        Registry and store to publish into; default: the PZ Server's, from ``pzlib.config.load_settings()``.
    triggered_by, run_id : str, optional
        Who triggered the run and its id (the Airflow DAG run's), recorded in the provenance.

    Returns
    -------
    dict or None
        ``{"product_id", "internal_name", "display_name", "owner", "replaced"}``; None when there is nothing to
        publish (``publish`` is off, or the input has no true redshifts, hence no report).

    Raises
    ------
    ValueError
        ``owner`` names no user; stage IV has not run for the estimator.
    AlreadyExists
        The owner has a product of the report's name that this pipeline did not publish.
    """
    if not spec.publish:
        return None
    summary = _assembled_summary(spec, estimator)
    if not summary.get("report"):
        return None
    files = files or ProductFiles.from_settings(load_settings())
    owner = report_owner(spec, files.registry)
    display_name = spec.report_display_name(estimator)
    description = (f"Validation of the {estimator} photo-z catalog of release {spec.release} ({summary['n_rows']:,} "
                   "objects): science metrics against the true redshifts, Great Expectations results and plots.")
    provenance = {"pipeline": PIPELINE_NAME, "release": spec.release, "estimator": estimator,
                  "catalog": summary["catalog"], "n_rows": summary["n_rows"], "dag_run_id": run_id,
                  "triggered_by": triggered_by, "params": spec.to_params()}
    existing = _published_product(files.registry, owner, display_name)
    if existing is None:
        product = publish_report(files, owner, summary["report"], display_name=display_name,
                                 release=_registered_release(files.registry, owner, spec.release),
                                 description=description, official=owner.is_admin, pz_code=estimator,
                                 provenance=provenance)
    else:
        made_by = existing.provenance or {}
        if (existing.product_type_name != REPORT_PRODUCT_TYPE or made_by.get("pipeline") != PIPELINE_NAME
                or made_by.get("release") != spec.release or made_by.get("estimator") != estimator):
            raise AlreadyExists(
                f"cannot publish the {estimator} validation report of release {spec.release}: {owner.username} "
                f"already has a product named {existing.display_name!r} ({existing.internal_name}) that this "
                "pipeline did not publish; rename or delete that product, or set the run's owner to another user"
            )
        product = replace_report(files, owner, existing.id, summary["report"], description=description,
                                 pz_code=estimator, provenance=provenance)
    return {"product_id": product.id, "internal_name": product.internal_name, "display_name": product.display_name,
            "owner": owner.username, "replaced": existing is not None}


def publish_comparison(spec: RunSpec, files: ProductFiles | None = None, *, triggered_by: str | None = None,
                       run_id: str | None = None) -> dict | None:
    """Stage IV, once every estimator's report is published: the run's estimators side by side (see
    :mod:`pzlib.validate.comparison`), published as a ``validation_results`` product named by
    ``RunSpec.comparison_display_name`` and replaced on a rerun.

    Objects/s/core are stage III's (rows over the summed seconds of the estimator's partitions, each on one core);
    bytes/object the assembled catalog's.

    Returns
    -------
    dict or None
        As :func:`publish_validation`, plus ``"folder"``; None when ``publish`` is off, the run has fewer than
        two estimators, or its input has no true redshifts (no reports to compare).

    Raises
    ------
    ValueError
        An estimator's catalog is not assembled yet; ``owner`` names no user.
    AlreadyExists
        The owner has a product of the comparison's name that this pipeline did not publish.
    """
    if not spec.publish or len(spec.estimators) < 2:
        return None
    results = []
    for estimator in spec.estimators:
        summary_path = spec.output_path / estimator / "metrics.json"
        if not summary_path.is_file():
            raise ValueError(f"{summary_path} is missing: assemble the {estimator} catalog (stage IV) before "
                             "comparing the estimators")
        summary = json.loads(summary_path.read_text())
        if not summary.get("report"):
            return None
        report_metrics = json.loads((Path(summary["report"]) / "metrics.json").read_text())["metrics"]
        seconds = estimate_seconds(spec.output, estimator)
        results.append(EstimatorResult(estimator, report_metrics,
                                       summary["n_rows"] / seconds if seconds else None,
                                       summary["bytes"] / summary["n_rows"]))
    build_comparison(results, spec.comparison_path, title=f"{spec.release}: {', '.join(spec.estimators)}")
    files = files or ProductFiles.from_settings(load_settings())
    owner = report_owner(spec, files.registry)
    display_name = spec.comparison_display_name
    description = (f"The photo-z estimators of release {spec.release} side by side ({', '.join(spec.estimators)}): "
                   "σ_NMAD, outlier rates, bias, PIT KS, CDE loss, objects/s/core and bytes/object in one table; "
                   "N(z), PIT and metrics against magnitude and redshift overlaid.")
    provenance = {"pipeline": PIPELINE_NAME, "release": spec.release, "estimator": None,
                  "estimators": list(spec.estimators), "dag_run_id": run_id, "triggered_by": triggered_by,
                  "params": spec.to_params()}
    existing = _published_product(files.registry, owner, display_name)
    if existing is None:
        product = publish_report(files, owner, spec.comparison_path, display_name=display_name,
                                 release=_registered_release(files.registry, owner, spec.release),
                                 description=description, official=owner.is_admin, provenance=provenance)
    else:
        made_by = existing.provenance or {}
        if (existing.product_type_name != REPORT_PRODUCT_TYPE or made_by.get("pipeline") != PIPELINE_NAME
                or made_by.get("release") != spec.release or "estimators" not in made_by):
            raise AlreadyExists(
                f"cannot publish the estimator comparison of release {spec.release}: {owner.username} already has "
                f"a product named {existing.display_name!r} ({existing.internal_name}) that this pipeline did not "
                "publish; rename or delete that product, or set the run's owner to another user"
            )
        product = replace_report(files, owner, existing.id, spec.comparison_path, description=description,
                                 provenance=provenance)
    return {"product_id": product.id, "internal_name": product.internal_name, "display_name": product.display_name,
            "owner": owner.username, "replaced": existing is not None, "folder": str(spec.comparison_path)}


def publish_catalog(spec: RunSpec, estimator: str, files: ProductFiles | None = None, *,
                    dag_id: str | None = None, run_id: str | None = None,
                    triggered_by: str | None = None) -> dict | None:
    """Stage IV: register the estimator's photo-z catalog as a ``photoz_estimates`` product of its release.

    A release's catalog is far larger than an upload, so the product holds its metadata only (as LIneA's PZ
    Server does above 200 MB): the main file is the catalog's manifest (every file's key, size and SHA-256), with
    the Felis schema (``felis.yaml``) and the provenance (``provenance.json``: software versions and commit, the
    run's params, input, training set and model fingerprints, the Airflow run, per-stage timings) beside it; the
    description says where the catalog is (the delivered ``s3://`` URL, or the run folder), its rows, bytes,
    columns with their UCDs and units, the PDF grid and representation, and links the validation report. A
    rerun replaces the product's files and metadata, keeping its id.

    Returns ``{"product_id", "internal_name", "display_name", "owner", "replaced", "official"}``, or None when
    ``publish`` is off.

    Raises
    ------
    ValueError
        Stage IV has not assembled the estimator's catalog; ``owner`` names no user.
    AlreadyExists
        The owner has a product of the catalog's name that this pipeline did not publish.
    """
    if not spec.publish:
        return None
    summary = _assembled_summary(spec, estimator)
    delivery = json.loads(spec.delivery_path(estimator).read_text()) if spec.destination else None
    files = files or ProductFiles.from_settings(load_settings())
    owner = report_owner(spec, files.registry)
    report = _published_product(files.registry, owner, spec.report_display_name(estimator))
    provenance = {"pipeline": PIPELINE_NAME, "release": spec.release, "estimator": estimator,
                  "catalog": delivery["url"] if delivery else summary["catalog"], "n_rows": summary["n_rows"],
                  "bytes": summary["bytes"], "delivery": delivery, "pdf": {key: summary["pdf"][key] for key in
                                                                            ("representation", "grid")},
                  "validation_report": report.internal_name if report else None, "metrics": summary["metrics"],
                  "dag_run_id": run_id, "triggered_by": triggered_by,
                  **run_provenance(spec, estimator, dag_id=dag_id, run_id=run_id, triggered_by=triggered_by)}
    description = _catalog_description(spec, estimator, summary, delivery, report)
    display_name = spec.catalog_display_name(estimator)
    uploads = [(Path(summary["manifest"]).name, Path(summary["manifest"]).read_bytes(), FileRole.MAIN),
               (Path(summary["felis_schema"]).name, Path(summary["felis_schema"]).read_bytes(), FileRole.AUXILIARY),
               ("provenance.json", json.dumps(provenance, indent=1, default=str).encode(), FileRole.AUXILIARY)]
    existing = _published_product(files.registry, owner, display_name)
    if existing is None:
        product = files.registry.create_product(
            owner, display_name=display_name, product_type=CATALOG_PRODUCT_TYPE,
            release=_registered_release(files.registry, owner, spec.release), official=owner.is_admin,
            pz_code=estimator, description=description, provenance=provenance)
    else:
        made_by = existing.provenance or {}
        if (existing.product_type_name != CATALOG_PRODUCT_TYPE or made_by.get("pipeline") != PIPELINE_NAME
                or made_by.get("release") != spec.release or made_by.get("estimator") != estimator):
            raise AlreadyExists(
                f"cannot publish the {estimator} photo-z catalog of release {spec.release}: {owner.username} already "
                f"has a product named {existing.display_name!r} ({existing.internal_name}) that this pipeline did "
                "not publish; rename or delete that product, or set the run's owner to another user"
            )
        product = files.registry.update_product(owner, existing.id, status=ProductStatus.REGISTERING,
                                                description=description, provenance=provenance)
        for stored in files.registry.list_files(owner, product.id):
            files.delete_file(owner, stored.id)
    try:
        for name, content, role in uploads:
            files.upload(owner, product.id, name=name, content=io.BytesIO(content), role=role,
                         mime_type="application/yaml" if name.endswith(".yaml") else "application/json")
    except BaseException:
        if existing is None:
            files.delete_product(owner, product.id)  # all or nothing; a replaced product stays Registering
        raise
    product = files.registry.update_product(owner, product.id, status=ProductStatus.PUBLISHED)
    return {"product_id": product.id, "internal_name": product.internal_name, "display_name": product.display_name,
            "owner": owner.username, "replaced": existing is not None, "official": product.official}


def _assembled_summary(spec: RunSpec, estimator: str) -> dict:
    """What stage IV's ``assemble`` recorded of the estimator's catalog; ValueError when it has not run."""
    summary_path = spec.output_path / estimator / "metrics.json"
    if not summary_path.is_file():
        raise ValueError(f"{summary_path} is missing: assemble the {estimator} catalog (stage IV) before publishing")
    return json.loads(summary_path.read_text())


def _catalog_description(spec: RunSpec, estimator: str, summary: dict, delivery: dict | None, report) -> str:
    """What a user reads on the product page: where the catalog is and what it holds."""
    location = (f"Delivered to {delivery['url']} (verified against its manifest {delivery['manifest']}"
                f"{', endpoint ' + delivery['endpoint_url'] if delivery.get('endpoint_url') else ''})"
                if delivery else f"In the run folder: {summary['catalog']}")
    columns = photoz_column_descriptions(open_catalog(summary["catalog"]).schema)
    column_lines = "\n".join(
        f"- `{name}`: {column.description} (UCD `{column.ucd}`{', unit ' + column.unit if column.unit else ''})"
        for name, column in columns.items())
    metrics = summary.get("metrics")
    quality = (f"Against the input's true redshifts: σ_NMAD {metrics['sigma_nmad']:.4f}, outliers "
               f"{100 * metrics['outlier_rate']:.1f}%, bias {metrics['bias']:+.4f}." if metrics else
               "The input has no true redshifts: no metrics.")
    linked = f" Validation report: {report.internal_name}." if report else ""
    return (f"Photo-z estimates of release {spec.release} by {estimator} ({summary['n_rows']:,} objects, "
            f"{summary['bytes']:,} bytes, {summary['format']}). {location}. Open it with "
            f"`lsdb.open_catalog(URL)` and join with the object catalog on the object id; "
            f"`pzlib.pdf.frame_to_ensemble` gives the qp ensemble of the `pdf` column back. {quality}{linked}\n\n"
            f"{summary['pdf']['description']}\n\nColumns:\n{column_lines}\n\nThe main file is the catalog's manifest "
            "(each file's key, size and SHA-256); felis.yaml describes the table (Felis), provenance.json says "
            "how it was made.")


def _registered_release(registry: Registry, user: User, release: str) -> str | None:
    """The release's name when the PZ Server has it registered (and ``user`` may see it), else None."""
    try:
        return registry.get_release(user, release).name
    except NotFound:
        return None


def _published_product(registry: Registry, owner: User, display_name: str):
    """The owner's live product named ``display_name`` (names are unique per owner, whatever their case)."""
    filters = ProductFilter(owner=(owner.id,), product_name=Terms((display_name,)))
    for product in registry.list_products(owner, filters, page_size=100).results:
        if product.display_name.lower() == display_name.lower() and product.status is not ProductStatus.DELETED:
            return product
    return None
