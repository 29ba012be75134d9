"""FalService's job methods: creating, finding, handling, cancelling, retrying, resuming and
reconciling journaled jobs (a mixin, so core.py keeps the service's lifecycle and generation).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from falkit.errors import FalkitError, LookupFailedError

if TYPE_CHECKING:
    from falkit.request import PreparedJob
    from falkit.service.core import FalService
    from falkit.service.engine import Emit, Finish, JobEngine
    from falkit.service.handle import JobHandle
    from falkit.service.progress import ProgressCallback
    from falkit.service.reconcile import Reconciled
    from falkit.service.training import TrainingResult
    from falkit.store import JobRecord, JobStore


class JobsApi:
    """The job methods of FalService."""

    if TYPE_CHECKING:
        _engine: JobEngine | None

        async def store(self) -> JobStore: ...

        async def engine(self) -> JobEngine: ...

        def image_finisher(self, out_dir: Path | None = None) -> Finish: ...

    @property
    def _service(self) -> FalService:
        return cast("FalService", self)

    async def create_job(
        self,
        prepared: PreparedJob,
        *,
        batch_id: str | None = None,
        batch_index: int | None = None,
        job_id: str | None = None,
    ) -> JobRecord:
        store = await self.store()
        return await store.create_job(
            kind=prepared.kind,
            model=prepared.model,
            endpoint_id=prepared.endpoint_id,
            arguments=prepared.arguments,
            estimated_cost=prepared.estimated_cost,
            batch_id=batch_id,
            batch_index=batch_index,
            job_id=job_id,
        )

    def finisher(self, kind: str) -> Finish:
        """How a job of this kind is finished once its output is in."""
        if kind == "image":
            return self.image_finisher()
        if kind == "training":
            from falkit.service.training import finish_training_job

            async def finish(job: JobRecord, response: Any, emit_: Emit) -> TrainingResult:
                return await finish_training_job(self._service, job, response, emit_)

            return finish
        raise FalkitError(f"no handler for jobs of kind {kind!r}")

    async def get_job(self, job_id: str) -> JobRecord:
        """A job by id, unique id prefix, Fal request id, or ``last`` (the newest job);
        LookupFailedError if there is none."""
        store = await self.store()
        if job_id.strip().lower() == "last":
            newest = await store.list_jobs(limit=1)
            if not newest:
                raise LookupFailedError("no jobs in the library yet; try `falkit generate`")
            return newest[0]
        job = await store.get_job(job_id)
        if job is None:
            raise LookupFailedError(f"no job {job_id!r} in the library; see `falkit jobs list`")
        return job

    async def handle(self, job_id: str) -> JobHandle:
        """A handle on a job: the running one, or the journaled job reattached (never
        submitted again if it has a request id; a never-sent one is submitted)."""
        if self._engine is not None:
            live = self._engine.get(job_id)
            if live is not None:
                return live
        job = await self.get_job(job_id)
        engine = await self.engine()
        live = engine.get(job.id)
        if live is not None:
            return live
        if engine.dispatcher is not None:  # a cluster: read the job's events from its bus
            return await engine.dispatcher.watch(job)
        from falkit.service.jobs import ended_handle

        if job.finished or job.status == "submitting":
            return ended_handle(engine, job)
        return engine.attach(job, self.finisher(job.kind))

    async def list_jobs(
        self, *, search: str | None = None, limit: int = 20, **kw: Any
    ) -> list[JobRecord]:
        store = await self.store()
        return await store.list_jobs(search=search, limit=limit, **kw)

    async def cancel_job(self, job_id: str) -> str:
        """Cancel a job (at Fal if it was sent); Fal's word for the outcome."""
        from falkit.service.jobs import cancel_job

        return await cancel_job(self._service, job_id)

    async def retry_job(
        self,
        job_id: str,
        on_progress: ProgressCallback | None = None,
        *,
        out_dir: Path | None = None,
    ) -> Any:
        """Submit a failed, cancelled or unknown image job again, as a new job (an explicit
        choice: an "unknown" job's first submit may have reached Fal)."""
        from falkit.service.jobs import retry_job

        return await retry_job(self._service, job_id, on_progress, out_dir=out_dir)

    async def resume(
        self, on_progress: ProgressCallback | None = None, *, kind: str | None = None
    ) -> list[Any]:
        """Finish every unfinished job: reattach to submitted ones, submit only unsent ones.

        Returns one entry per job: its result, or the exception it ended with.
        """
        from falkit.service.jobs import resume

        return await resume(self._service, on_progress, kind=kind)

    async def reconcile(
        self, on_progress: ProgressCallback | None = None
    ) -> list[tuple[Reconciled, Any]]:
        """Settle ``unknown`` jobs with Fal's request history (falkit.service.reconcile):
        found ones are followed to their end, ones that never arrived are submitted once.

        Returns each job's verdict with its result, the error it ended with, or None.
        """
        from falkit.service.jobs import reconcile_jobs

        return await reconcile_jobs(self._service, on_progress)
