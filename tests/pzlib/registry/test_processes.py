"""Processes in the registry (pzlib.registry.processes), each test run on SQLite and on Postgres."""

from __future__ import annotations

import pytest
from fixtures.registry import create_specz, publish
from sqlalchemy import func, select

from pzlib.registry import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    ProcessStatus,
    Registry,
    User,
    schema,
)


def test_process_records_a_pipeline_run(registry: Registry, alice: User) -> None:
    registry.create_release("dp1", "Data Preview 1", is_public=True)
    first = create_specz(registry, alice, "First")
    second = create_specz(registry, alice, "Second")
    output = registry.create_product(alice, display_name="TSM output", product_type="training_set", status=3)

    process = registry.create_process(
        alice,
        pipeline="training_set_maker",
        display_name="My TSM run",
        used_config={"param": {"crossmatch": {"radius_arcsec": 1.0}}},
        inputs=[second.id, first.internal_name],
        release="dp1",
        output_product=output.id,
    )

    assert process.status is ProcessStatus.PENDING
    assert process.inputs == (second.id, first.id)
    assert process.used_config == {"param": {"crossmatch": {"radius_arcsec": 1.0}}}
    assert (process.output_product_id, process.owner_id) == (output.id, alice.id)
    assert (process.started_at, process.ended_at, process.dag_id) == (None, None, None)
    assert registry.get_process(alice, process.id) == process


def test_process_moves_through_its_states(registry: Registry, alice: User) -> None:
    process = registry.create_process(alice, pipeline="combine_redshift", display_name="CRC")

    queued = registry.update_process(process.id, status="queued", dag_id="pz_crc", run_id="manual__1")
    running = registry.update_process(process.id, status=ProcessStatus.RUNNING)
    failed = registry.update_process(process.id, status="Failed", error="radius must be positive")

    assert (queued.status, queued.dag_id, queued.run_id) == (ProcessStatus.QUEUED, "pz_crc", "manual__1")
    assert running.started_at is not None and running.ended_at is None
    assert failed.ended_at >= failed.started_at
    assert failed.error == "radius must be positive"
    with pytest.raises(InvalidInput, match="already ended \\(Failed\\)"):
        registry.update_process(process.id, status="Running")
    with pytest.raises(InvalidInput, match="process status 'Exploded' is unknown"):
        registry.update_process(process.id, status="Exploded")
    with pytest.raises(NotFound):
        registry.update_process(999, status="Running")


def test_stop_process(registry: Registry, admin: User, alice: User, bob: User) -> None:
    pending = registry.create_process(alice, pipeline="p", display_name="pending")
    running = registry.create_process(alice, pipeline="p", display_name="running")
    registry.update_process(running.id, status="Running")

    assert registry.stop_process(alice, pending.id).status is ProcessStatus.STOPPED
    assert registry.stop_process(admin, running.id).status is ProcessStatus.STOPPING
    with pytest.raises(InvalidInput, match="nothing to stop"):
        registry.stop_process(alice, pending.id)
    with pytest.raises(NotFound):
        registry.stop_process(bob, running.id)


def test_create_process_refuses_bad_inputs_and_outputs(registry: Registry, alice: User, bob: User) -> None:
    registry.create_release("dp2", "Data Preview 2", access_groups=["lsst"])
    hidden = create_specz(registry, alice, "Hidden", release="dp2")
    alices_output = publish(
        registry, alice, registry.create_product(alice, display_name="Out", product_type="training_set")
    )
    bobs_input = create_specz(registry, bob)

    with pytest.raises(InvalidInput, match=f"input product {hidden.id} does not exist or is not visible"):
        registry.create_process(bob, pipeline="p", display_name="x", inputs=[hidden.id])
    with pytest.raises(InvalidInput, match="listed twice"):
        registry.create_process(
            bob, pipeline="p", display_name="x", inputs=[bobs_input.id, bobs_input.internal_name]
        )
    with pytest.raises(PermissionDenied, match="belongs to alice"):
        registry.create_process(bob, pipeline="p", display_name="x", output_product=alices_output.id)
    with pytest.raises(PermissionDenied, match="'dp2'"):
        registry.create_process(bob, pipeline="p", display_name="x", release="dp2")
    with pytest.raises(InvalidInput, match="used_config must be a JSON object"):
        registry.create_process(bob, pipeline="p", display_name="x", used_config=["radius"])
    with pytest.raises(NotFound):
        registry.get_process(bob, 1)
    with registry.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(schema.processes)) == 0
