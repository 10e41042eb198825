"""Stage IV of the ``pz_compute`` DAG: each validation report published in the PZ Server, replaced on a rerun."""

from __future__ import annotations

import json

from pzlib.compute.spec import RunSpec
from pzlib.config import load_settings
from pzlib.registry import AlreadyExists, NotFound, ProductFilter, ProductStatus, Registry, Terms, User
from pzlib.registry.registration import ProductFiles
from pzlib.registry.reports import REPORT_PRODUCT_TYPE, publish_report, replace_report

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
        return registry.get_user(PLATFORM_USER)
    except NotFound:
        pass
    try:
        return registry.create_user(PLATFORM_USER, first_name="pz_compute", last_name="pipeline")
    except AlreadyExists:  # another estimator's task created it first
        return registry.get_user(PLATFORM_USER)


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
    summary_path = spec.output_path / estimator / "metrics.json"
    if not summary_path.is_file():
        raise ValueError(f"{summary_path} is missing: assemble the {estimator} catalog (stage IV) before publishing")
    summary = json.loads(summary_path.read_text())
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
    existing = _published_report(files.registry, owner, display_name)
    if existing is None:
        product = publish_report(files, owner, summary["report"], display_name=display_name,
                                 description=description, pz_code=estimator, provenance=provenance)
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


def _published_report(registry: Registry, owner: User, display_name: str):
    """The owner's live product named ``display_name`` (names are unique per owner, whatever their case)."""
    filters = ProductFilter(owner=(owner.id,), product_name=Terms((display_name,)))
    for product in registry.list_products(owner, filters, page_size=100).results:
        if product.display_name.lower() == display_name.lower() and product.status is not ProductStatus.DELETED:
            return product
    return None
