"""LoRAs by name, the uploads cache, and batches."""

from __future__ import annotations

import pytest

from falkit.errors import ValidationError
from falkit.store import JobStore
from tests.store.helpers import new_job

LORA_URL = "https://v3.fal.media/files/tiger/pytorch_lora_weights.safetensors"


async def _add(store: JobStore, name: str, **kw: object) -> object:
    values: dict[str, object] = {
        "name": name,
        "url": LORA_URL,
        "trigger_word": "TOK",
        "config_url": "https://v3.fal.media/files/tiger/config.json",
        "local_path": None,
        "job_id": None,
        "params": {"steps": 1000, "learning_rate": 0.0004},
    }
    values.update(kw)
    return await store.add_lora(**values)  # type: ignore[arg-type]


async def test_lora_add_get_list_remove(store: JobStore) -> None:
    job = await new_job(store, kind="training", model="flux-lora-training")
    added = await _add(store, "tiger", job_id=job.id, local_path="/loras/tiger.safetensors")
    await _add(store, "apple", trigger_word=None, config_url=None, params={})
    tiger = await store.get_lora("tiger")
    assert tiger == added
    assert tiger is not None
    assert (tiger.url, tiger.trigger_word, tiger.job_id) == (LORA_URL, "TOK", job.id)
    assert tiger.local_path == "/loras/tiger.safetensors"
    assert tiger.params == {"steps": 1000, "learning_rate": 0.0004}
    assert tiger.created_at.tzinfo is not None
    assert [lora.name for lora in await store.list_loras()] == ["apple", "tiger"]
    assert await store.remove_lora("tiger") is True
    assert await store.remove_lora("tiger") is False
    assert await store.get_lora("tiger") is None
    assert [lora.name for lora in await store.list_loras()] == ["apple"]


async def test_duplicate_lora_name_is_a_validation_error_on_name(store: JobStore) -> None:
    await _add(store, "tiger")
    with pytest.raises(ValidationError) as caught:
        await _add(store, "tiger", url="https://elsewhere/other.safetensors")
    assert [e.field for e in caught.value.errors] == ["name"]
    assert "already exists" in str(caught.value)
    kept = await store.get_lora("tiger")
    assert kept is not None
    assert kept.url == LORA_URL


async def test_replace_overwrites_a_lora(store: JobStore) -> None:
    await _add(store, "tiger")
    replaced = await _add(store, "tiger", url="https://new/weights.safetensors", replace=True)
    stored = await store.get_lora("tiger")
    assert stored == replaced
    assert stored is not None
    assert stored.url == "https://new/weights.safetensors"
    assert len(await store.list_loras()) == 1


async def test_lora_needs_a_name_and_a_url(store: JobStore) -> None:
    with pytest.raises(ValidationError) as no_name:
        await _add(store, "  ")
    assert no_name.value.errors[0].field == "name"
    with pytest.raises(ValidationError) as no_url:
        await _add(store, "x", url="")
    assert no_url.value.errors[0].field == "url"


async def test_uploads_are_remembered_by_content_hash(store: JobStore) -> None:
    digest = "ab" * 32
    assert await store.find_upload(digest) is None
    await store.remember_upload(digest, "https://v3.fal.media/files/a.zip", 2_000_000_000_000)
    assert await store.find_upload(digest) == "https://v3.fal.media/files/a.zip"
    await store.remember_upload(digest, "https://v3.fal.media/files/b.zip", 10)
    assert await store.find_upload(digest) == "https://v3.fal.media/files/b.zip"
    assert await store.find_upload("cd" * 32) is None


async def test_batches_are_idempotent_and_list_their_jobs_in_order(store: JobStore) -> None:
    spec = {"prompts": ["a", "b"], "seeds": [1, 2], "params": {"image_size": "square"}}
    batch = await store.create_batch(
        batch_id="b_1", spec=spec, out_dir="/out", budget_usd=20.0, total_jobs=4
    )
    again = await store.create_batch(
        batch_id="b_1", spec={"other": True}, out_dir=None, budget_usd=None, total_jobs=9
    )
    assert again == batch
    assert (batch.spec, batch.out_dir, batch.budget_usd, batch.total_jobs) == (
        spec,
        "/out",
        20.0,
        4,
    )
    assert await store.get_batch("b_1") == batch
    assert await store.get_batch("b_2") is None
    second = await store.create_batch(
        batch_id="b_2", spec={}, out_dir=None, budget_usd=None, total_jobs=0
    )
    assert [b.id for b in await store.list_batches()] == [second.id, batch.id]
    assert [b.id for b in await store.list_batches(limit=1)] == [second.id]

    for index in (2, 0, 3, 1):
        await new_job(store, f"job {index}", batch_id="b_1", batch_index=index)
    await new_job(store, "elsewhere", batch_id="b_2", batch_index=0)
    jobs = await store.batch_jobs("b_1")
    assert [j.batch_index for j in jobs] == [0, 1, 2, 3]
    assert [j.prompt for j in jobs] == ["job 0", "job 1", "job 2", "job 3"]
    assert [j.id for j in await store.list_jobs(batch_id="b_2")] == [
        j.id for j in await store.batch_jobs("b_2")
    ]
    assert await store.batch_jobs("b_3") == []
