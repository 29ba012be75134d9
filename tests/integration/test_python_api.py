"""The Python API as a developer meets it: exports, the blocking facade, the built-in emulator."""

from __future__ import annotations

import inspect
from pathlib import Path

import falkit
from falkit.service import FalService
from falkit.service.sync import SyncFalService, SyncJobHandle, public_methods


def test_the_blocking_facade_has_every_public_method() -> None:
    missing = sorted(set(public_methods(FalService)) - set(dir(SyncFalService)))
    assert missing == []
    for name, method in public_methods(FalService).items():
        ours = getattr(SyncFalService, name)
        assert ours.__doc__ == method.__doc__, name  # generated from it, with its docs
        assert list(inspect.signature(ours).parameters) == list(
            inspect.signature(method).parameters
        ), name


def test_result_event_and_library_types_are_exported() -> None:
    for name in (
        "GenerationResult", "TrainingResult", "BatchResult", "JobHandle", "ImageRequest",
        "QueuedEvent", "CompletedEvent", "BatchProgressEvent", "LoraRecord", "JobRecord",
        "SyncFalService", "BudgetExceededError",
    ):  # fmt: skip
        assert name in falkit.__all__
        assert getattr(falkit, name).__name__ == name


async def test_the_service_can_run_its_own_emulator(isolated_env: Path) -> None:
    async with FalService(emulator=True) as service:
        result = await service.generate_image("a lighthouse", seed=7, steps=2)
        assert service.settings.queue_url.startswith("http://127.0.0.1:")
    assert result.images[0].path.is_file()
    assert result.images[0].path.is_relative_to(isolated_env / "emulator")


def test_blocking_facade_end_to_end(isolated_env: Path) -> None:
    with SyncFalService(emulator=True) as fal:
        result = fal.generate_image("a red kite", seed=3)
        handle = fal.start_image(fal.request("a blue kite", steps=1))
        assert isinstance(handle, SyncJobHandle)
        second = handle.result()
        types = [event.type for event in handle.events()]
        jobs = fal.list_jobs()
        events = list(fal.generate_image_events("a green kite", steps=1))
    assert result.images[0].path.is_file()
    assert second.images[0].path.is_file()
    assert types[0] == "queued"
    assert types[-1] == "completed"
    assert {job.id for job in jobs} >= {result.job_id, second.job_id}
    assert events[-1].type == "completed"
