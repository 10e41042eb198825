"""The pipelines users can request through the PZ Server, and the start of a run (a process).

A pipeline is fixed data: its name, the product types it reads, the type it makes and its default parameters
(LIneA's defaults) and the Airflow DAG that carries a run out. Starting a run records a process and the product it
will fill, owned by the requester and ``Processing`` until the run ends; :mod:`pzlib.registry.process_runs` checks
the request, triggers the DAG and follows it.

Examples
--------
>>> get_pipeline("training_set_maker").output_product_type
'training_set'
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pzlib.registry.errors import InvalidInput, NotFound
from pzlib.registry.records import Process, Product, User
from pzlib.registry.registry import Registry
from pzlib.registry.schema import ProductStatus


@dataclass(frozen=True)
class Pipeline:
    """A pipeline users may run on their products."""

    id: int
    name: str
    display_name: str
    version: str
    description: str
    product_types_accepted: tuple[str, ...]
    """Types of the input products."""
    output_product_type: str
    """Type of the product a run makes."""
    dag_id: str
    """The Airflow DAG that carries a run out."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """Default parameters, as LIneA's API shows them; a run's ``used_config["param"]`` overrides them."""

    def check_accepts(self, product: Product) -> None:
        """Raise ``InvalidInput`` unless the pipeline reads products of ``product``'s type."""
        if product.product_type_name not in self.product_types_accepted:
            raise InvalidInput(
                f"input product {product.internal_name} is a {product.product_type_name}; pipeline {self.name} "
                f"reads {', '.join(self.product_types_accepted)}"
            )

    def with_defaults(self, param: dict[str, Any]) -> dict[str, Any]:
        """A run's parameters: ``param`` with the defaults of the parameters it leaves out."""
        return {**copy.deepcopy(self.parameters), **param}


PIPELINES: tuple[Pipeline, ...] = (
    Pipeline(
        id=1,
        name="training_set_maker",
        display_name="Training Set Maker",
        version="0.1.0",
        description="Cross-matches a reference redshift catalog with the objects of a data release (LSDB on HATS) "
        "and makes a training set.",
        product_types_accepted=("redshift_catalog",),
        output_product_type="training_set",
        dag_id="training_set_maker",
        parameters={
            "crossmatch": {"radius_arcsec": 1.0, "n_neighbors": 1},
            "duplicate_criteria": "closest",
            "flux_type": "auto",
            "convert_flux_to_mag": True,
            "dereddening": "sfd",
            "split": {"method": "random", "train_fraction": 0.7, "seed": 0},
        },
    ),
    Pipeline(
        id=2,
        name="combine_redshift_dedup",
        display_name="Combine Redshift Catalogs",
        version="0.1.0",
        description="Merges several reference redshift catalogs: concatenate, mark duplicates or remove them.",
        product_types_accepted=("redshift_catalog",),
        output_product_type="redshift_catalog",
        dag_id="combine_redshift_catalogs",
        parameters={
            "combine_type": "concatenate_and_mark_duplicates",
            "crossmatch": {"radius_arcsec": 1.0, "n_neighbors": 16},
            "flags_translation_file": None,
            "untranslated_surveys": "refuse",
        },
    ),
)
"""Every pipeline of the platform."""


def list_pipelines(name: str | None = None) -> tuple[Pipeline, ...]:
    """The pipelines, or the one named ``name`` (none when it does not exist)."""
    return tuple(pipeline for pipeline in PIPELINES if name is None or pipeline.name == name)


def get_pipeline(reference: int | str) -> Pipeline:
    """The pipeline with this id or name.

    Raises
    ------
    NotFound
        No such pipeline.
    """
    for pipeline in PIPELINES:
        if reference in (pipeline.id, pipeline.name):
            return pipeline
    known = ", ".join(f"{pipeline.id} {pipeline.name}" for pipeline in PIPELINES)
    raise NotFound(f"pipeline {reference!r} does not exist; use one of {known}")


def start_process(
    registry: Registry,
    user: User,
    pipeline: int | str,
    *,
    display_name: str,
    used_config: dict[str, Any] | None = None,
    inputs: Sequence[int | str] = (),
    release: int | str | None = None,
) -> Process:
    """Record a run of ``pipeline`` for ``user`` and the product it will make.

    The output product is named ``display_name``, is of the pipeline's output type and stays ``Processing``
    until the run ends. Parameters missing from ``used_config["param"]`` take the pipeline's defaults.

    Returns
    -------
    Process
        In state ``Pending``, with ``output_product_id`` set.

    Raises
    ------
    NotFound
        No such pipeline.
    InvalidInput
        No input, an input of a type the pipeline does not read, or a malformed value.
    AlreadyExists
        ``user`` already has a product named ``display_name``.
    """
    chosen = get_pipeline(pipeline)
    if not inputs:
        raise InvalidInput(f"pipeline {chosen.name} needs at least one input product")
    for reference in inputs:
        try:
            product = registry.get_product(user, reference)
        except NotFound as error:
            raise InvalidInput(f"input product {reference!r} does not exist or is not visible to you") from error
        chosen.check_accepts(product)
    config = dict(used_config or {})
    param = config.get("param", {})
    if not isinstance(param, dict):
        raise InvalidInput(f"used_config['param'] must be a JSON object, got {type(param).__name__}")
    config["param"] = chosen.with_defaults(param)
    output = registry.create_product(
        user,
        display_name=display_name,
        product_type=chosen.output_product_type,
        release=release,
        description=f"Made by the {chosen.display_name} pipeline.",
        status=ProductStatus.PROCESSING,
    )
    try:
        return registry.create_process(
            user,
            pipeline=chosen.name,
            display_name=display_name,
            used_config=config,
            inputs=inputs,
            release=release,
            output_product=output.id,
        )
    except BaseException:
        registry.delete_product(user, output.id)
        raise
