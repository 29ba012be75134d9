"""The emulator's request history (platform API) read through falkit's platform client."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from falkit.client import FalClient
from falkit.client.platform import parse_page
from falkit.client.retry import RetryPolicy
from falkit.emulator import EmulatorConfig, EmulatorServer, Fault, run_emulator
from falkit.errors import ApiError, AuthenticationError, ServerError

AUTH = {"Authorization": "Key emulator-key:emulator-secret"}
SCHNELL = "fal-ai/flux/schnell"


@pytest.fixture
def emu() -> Iterator[EmulatorServer]:
    with run_emulator(EmulatorConfig(latency=0.05)) as server:
        yield server


@pytest.fixture
async def client(emu: EmulatorServer) -> AsyncIterator[FalClient]:
    retry = RetryPolicy(max_attempts=2, base_delay=0.01)
    async with FalClient(emu.settings(), retry=retry) as fal:
        yield fal


def _since() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)


async def test_every_accepted_submit_is_listed_with_its_payload(
    emu: EmulatorServer, client: FalClient
) -> None:
    sent = [await client.submit(SCHNELL, {"prompt": f"fox {i}", "seed": i}) for i in range(3)]
    await client.submit("fal-ai/flux/dev", {"prompt": "elsewhere"})
    history = await client.platform.request_history(SCHNELL, start=_since())
    assert history.complete
    by_id = {entry.request_id: entry for entry in history.entries}
    assert set(by_id) == {handle.request_id for handle in sent}
    for i, handle in enumerate(sent):
        entry = by_id[handle.request_id]
        assert entry.payload == {"prompt": f"fox {i}", "seed": i}
        assert entry.endpoint_id == SCHNELL
        assert entry.sent_at is not None
        assert entry.sent_at > _since()


async def test_a_submit_whose_answer_was_lost_is_found(
    emu: EmulatorServer, client: FalClient
) -> None:
    emu.faults.add(Fault(route="submit", kind="drop_after"))
    with pytest.raises(Exception, match="may have been queued"):
        await client.submit(SCHNELL, {"prompt": "lost answer"})
    history = await client.platform.request_history(SCHNELL, start=_since())
    assert [entry.payload for entry in history.entries] == [{"prompt": "lost answer"}]
    assert emu.stats.submits == 1


async def test_the_window_and_the_pages(emu: EmulatorServer, client: FalClient) -> None:
    for i in range(5):
        await client.submit(SCHNELL, {"prompt": f"p{i}"})
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert (await client.platform.request_history(SCHNELL, start=later)).entries == ()
    base = emu.base_url + "/api/models/requests/by-endpoint"
    async with httpx.AsyncClient(headers=AUTH) as http:
        first = (await http.get(base, params={"endpoint_id": SCHNELL, "limit": 2})).json()
        assert first["has_more"] is True
        assert len(first["items"]) == 2
        assert "json_input" not in first["items"][0]  # only with expand=payloads
        seen = [item["request_id"] for item in first["items"]]
        cursor = first["next_cursor"]
        while cursor:
            page = (
                await http.get(
                    base,
                    params={
                        "endpoint_id": SCHNELL,
                        "limit": 2,
                        "cursor": cursor,
                        "expand": "payload",
                    },
                )
            ).json()
            seen += [item["request_id"] for item in page["items"]]
            assert all("json_input" in item for item in page["items"])
            cursor = page["next_cursor"]
        assert len(set(seen)) == 5
        bad = await http.get(base, params={"endpoint_id": SCHNELL, "start": "yesterday"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "start"]
        assert (await http.get(base)).status_code == 422
        assert (
            await httpx.AsyncClient().get(base, params={"endpoint_id": SCHNELL})
        ).status_code == 401


async def test_history_failures_are_errors_not_answers(
    emu: EmulatorServer, client: FalClient
) -> None:
    emu.faults.add(Fault(route="history", kind="5xx", status=500, times=None))
    with pytest.raises(ServerError):
        await client.platform.request_history(SCHNELL, start=_since())
    emu.faults.clear()
    emu.engine.config.api_keys = {"another-key:secret"}
    with pytest.raises(AuthenticationError):
        await client.platform.request_history(SCHNELL, start=_since())


@pytest.mark.parametrize(
    ("body", "ids", "cursor"),
    [
        ([{"request_id": "a", "json_input": '{"prompt": "x"}'}], ["a"], None),
        (
            {"requests": [{"id": "b", "input": {"prompt": "y"}}], "next_cursor": "Mg=="},
            ["b"],
            "Mg==",
        ),
        ({"items": [{"request_id": "c"}], "next_cursor": "Mg==", "has_more": False}, ["c"], None),
        ({"items": [{"no_id": 1}, "junk", {"request_id": ""}]}, [], None),
    ],
)
def test_the_parser_tolerates_shapes(body: Any, ids: list[str], cursor: str | None) -> None:
    entries, next_cursor = parse_page(body)
    assert [entry.request_id for entry in entries] == ids
    assert next_cursor == cursor


def test_the_parser_refuses_what_is_not_a_list() -> None:
    with pytest.raises(ApiError, match="not a list"):
        parse_page({"detail": "nope"})
