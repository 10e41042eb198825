"""Processes in the registry: pipeline runs users request, carried out by Airflow DAG runs.

A process is its requester's and the admins'. It moves from ``Pending`` through ``Queued`` and ``Running`` to a
final state (``Successful``, ``Failed``, ``Stopped``; ``Stopping`` on the way when asked to stop), stamping when it
started and ended; no state follows a final one. Inputs are products the requester may see, the output one they
may change. ``pzlib.registry.process_runs`` keeps a process in step with its DAG run. One part of
:class:`pzlib.registry.Registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from pzlib.registry import checks, queries, schema, transactions
from pzlib.registry.checks import UNSET, Unset
from pzlib.registry.errors import InvalidInput, NotFound
from pzlib.registry.records import Page, Process, User
from pzlib.registry.schema import ProcessStatus

_processes = schema.processes


class ProcessRegistry:
    """The registry's processes; works on ``self.engine``."""

    engine: Engine

    def create_process(
        self,
        user: User,
        *,
        pipeline: str,
        display_name: str,
        used_config: dict[str, Any] | None = None,
        inputs: Sequence[int | str] = (),
        release: int | str | None = None,
        output_product: int | str | None = None,
    ) -> Process:
        """Record a pipeline run requested by ``user``, in state ``Pending``.

        Parameters
        ----------
        user : User
            Requester.
        pipeline : str
            Pipeline name, e.g. ``"training_set_maker"``.
        display_name : str
            Name of the run (and usually of its output product).
        used_config : dict or None
            Configuration of the run, as a JSON object.
        inputs : sequence of int or str
            Input product ids or internal names, each visible to ``user``.
        release : int, str or None
            Release the run reads, visible to ``user``.
        output_product : int, str or None
            Product (owned by ``user``) the run fills.

        Raises
        ------
        InvalidInput
            Malformed value, input or output product not found, an input listed twice.
        PermissionDenied
            Release not visible, or output product not ``user``'s to change.
        """
        pipeline = checks.display_name(pipeline, "pipeline")
        display_name = checks.display_name(display_name)
        used_config = checks.json_object({} if used_config is None else used_config, "used_config")
        with transactions.writing(self.engine, "an input or output product of the process") as connection:
            input_ids: list[int] = []
            for reference in inputs:
                try:
                    input_ids.append(queries.visible_product(connection, user, reference).id)
                except NotFound as error:
                    raise InvalidInput(
                        f"input product {reference!r} does not exist or is not visible to you"
                    ) from error
            if len(set(input_ids)) != len(input_ids):
                raise InvalidInput(f"an input product is listed twice in {list(inputs)!r}")
            release_id = None if release is None else queries.accessible_release(connection, user, release).id
            output_id = None
            if output_product is not None:
                try:
                    output_id = queries.changeable_product(connection, user, output_product).id
                except NotFound as error:
                    raise InvalidInput(
                        f"output product {output_product!r} does not exist or is not visible to you"
                    ) from error
            now = queries.now()
            process_id = connection.execute(
                insert(_processes)
                .values(
                    pipeline=pipeline,
                    display_name=display_name,
                    used_config=used_config,
                    release_id=release_id,
                    output_product_id=output_id,
                    user_id=user.id,
                    status=ProcessStatus.PENDING.value,
                    created_at=now,
                    updated_at=now,
                )
                .returning(_processes.c.id)
            ).scalar_one()
            if input_ids:
                connection.execute(
                    insert(schema.process_inputs),
                    [
                        {"process_id": process_id, "product_id": product_id, "position": position}
                        for position, product_id in enumerate(input_ids)
                    ],
                )
            return queries.process_by_id(connection, process_id)

    def get_process(self, user: User, process_id: int) -> Process:
        """The process with this id, for its requester or an admin.

        Raises
        ------
        NotFound
            No such process, or ``user`` is neither its requester nor an admin.
        """
        with self.engine.connect() as connection:
            found = queries.process_by_id(connection, process_id)
        if found is None or not (user.is_admin or found.owner_id == user.id):
            raise NotFound(f"process {process_id!r} does not exist or is not yours")
        return found

    def list_processes(self, user: User, *, page: int = 1, page_size: int = 25) -> Page[Process]:
        """One page of the processes ``user`` may see (their own; an admin every one), newest first.

        Raises
        ------
        InvalidInput
            A page or page size that is not a positive integer.
        """
        for name, value in (("page", page), ("page_size", page_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be a positive integer, got {value!r}")
        visible = select(_processes.c.id)
        if not user.is_admin:
            visible = visible.where(_processes.c.user_id == user.id)
        with self.engine.connect() as connection:
            count = connection.scalar(select(func.count()).select_from(visible.subquery()))
            ids = connection.scalars(
                visible.order_by(_processes.c.created_at.desc(), _processes.c.id.desc())
                .limit(page_size).offset((page - 1) * page_size)
            ).all()
            found = tuple(queries.process_by_id(connection, process_id) for process_id in ids)
        return Page(count=count, results=found, page=page, page_size=page_size)

    def find_process(self, process_id: int) -> Process:
        """The process with this id, whoever requested it (for the platform's own tasks).

        Raises
        ------
        NotFound
            No such process.
        """
        with self.engine.connect() as connection:
            found = queries.process_by_id(connection, process_id)
        if found is None:
            raise NotFound(f"process {process_id!r} does not exist")
        return found

    def update_process(
        self,
        process_id: int,
        *,
        status: ProcessStatus | str | Unset = UNSET,
        dag_id: str | None | Unset = UNSET,
        run_id: str | None | Unset = UNSET,
        error: str | None | Unset = UNSET,
    ) -> Process:
        """Record the progress of a run, as its Airflow DAG run reports it.

        Entering ``Running`` stamps ``started_at``; entering a final state (``Successful``, ``Failed``,
        ``Stopped``) stamps ``ended_at``.

        Raises
        ------
        NotFound
            No such process.
        InvalidInput
            Unknown status, or a change of state after a final one.
        """
        new_status = None if status is UNSET else checks.process_status(status)
        values: dict[str, Any] = {}
        if dag_id is not UNSET:
            values["dag_id"] = checks.optional_text(dag_id, "dag_id", schema.NAME_LENGTH)
        if run_id is not UNSET:
            values["run_id"] = checks.optional_text(run_id, "run_id", schema.NAME_LENGTH)
        if error is not UNSET:
            values["error"] = error or None
        with transactions.writing(self.engine, f"process {process_id!r}") as connection:
            current = queries.process_by_id(connection, process_id)
            if current is None:
                raise NotFound(f"process {process_id!r} does not exist")
            if new_status is not None and new_status is not current.status:
                values.update(queries.status_change(current, new_status))
            if values:
                connection.execute(
                    update(_processes)
                    .where(_processes.c.id == current.id)
                    .values(updated_at=queries.now(), **values)
                )
            return queries.process_by_id(connection, current.id)

    def stop_process(self, user: User, process_id: int) -> Process:
        """Ask a run to stop: a run not started yet is ``Stopped`` at once, a running one goes ``Stopping``.

        Raises
        ------
        NotFound
            As ``get_process``.
        InvalidInput
            The run already ended.
        """
        current = self.get_process(user, process_id)
        if current.status.is_final:
            raise InvalidInput(
                f"process {process_id} already ended ({current.status.value}); nothing to stop"
            )
        if current.status in (ProcessStatus.PENDING, ProcessStatus.QUEUED):
            return self.update_process(process_id, status=ProcessStatus.STOPPED)
        return self.update_process(process_id, status=ProcessStatus.STOPPING)
