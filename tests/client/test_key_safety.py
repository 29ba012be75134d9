"""The API key goes in the Authorization header to Fal's URLs and nowhere else."""

from __future__ import annotations

import logging

import httpx
import pytest

from falkit.client import FalClient
from falkit.client.http import FalAuth
from falkit.config import Settings
from falkit.errors import AuthenticationError, FalkitError
from tests.client.fakes import FAST, KEY, REQUEST_ID, FakeFal, make_settings

SECRET = KEY.split(":")[1]
UNAUTHORIZED = httpx.Response(401, json={"detail": "No user found for Key ID and Secret"})


def assert_no_key(text: str) -> None:
    assert KEY not in text
    assert SECRET not in text


def test_reprs_never_show_the_key(settings: Settings, client: FalClient) -> None:
    for obj in (settings, client, client._http, client.http.auth, client.retry):
        assert_no_key(repr(obj))
        assert_no_key(str(obj))
    assert "9876" in repr(client)  # the masked form, so users can tell keys apart


async def test_errors_from_401_never_show_the_key(
    fal: FakeFal, client: FalClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fal.on("POST", "/fal-ai/flux/dev", UNAUTHORIZED)
    with pytest.raises(AuthenticationError) as caught:
        await client.submit("fal-ai/flux/dev", {"prompt": "x"})
    error = caught.value
    for text in (str(error), repr(error), repr(error.args), repr(error.body)):
        assert_no_key(text)
    assert_no_key(caplog.text)


async def test_a_server_echoing_the_key_does_not_put_it_in_our_messages(
    fal: FakeFal, client: FalClient
) -> None:
    echo = httpx.Response(401, json={"detail": f"Invalid key {KEY}"})
    fal.on("GET", f"/fal-ai/flux/requests/{REQUEST_ID}", echo)
    with pytest.raises(FalkitError) as caught:
        await client.result(client.handle("fal-ai/flux/dev", REQUEST_ID))
    assert_no_key(str(caught.value))
    assert_no_key(repr(caught.value))
    assert_no_key(repr(getattr(caught.value, "body", None)))


async def test_logs_of_a_whole_session_never_show_the_key(
    fal: FakeFal, client: FalClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fal.on(
        "POST", "/fal-ai/flux/dev", httpx.Response(429), httpx.ConnectError("refused"), UNAUTHORIZED
    )
    fal.on("GET", f"/fal-ai/flux/requests/{REQUEST_ID}/status/stream", httpx.ReadTimeout("slow"))
    fal.on("GET", f"/fal-ai/flux/requests/{REQUEST_ID}/status", UNAUTHORIZED)
    with pytest.raises(AuthenticationError):
        await client.submit("fal-ai/flux/dev", {"prompt": "x"})
    with pytest.raises(AuthenticationError):
        async for _ in client.watch(client.handle("fal-ai/flux/dev", REQUEST_ID)):
            pass
    assert "retrying" in caplog.text  # the logs did record the session
    assert_no_key(caplog.text)


async def test_the_key_is_only_sent_to_fals_urls(fal: FakeFal) -> None:
    fal.on("GET", "/x", httpx.Response(200))
    settings = make_settings(queue_url="http://127.0.0.1:8765/queue")
    async with FalClient(settings, transport=fal.transport, retry=FAST) as client:
        for url in (
            "http://127.0.0.1:8765/queue/x",
            "https://fal.run/x",
            "https://rest.fal.ai/x",
            "https://v3.fal.media/x",
            "https://example.com/x",
            "https://fal.run.evil.example/x",
            "https://v3.fal.media.evil.example/x",
            "http://127.0.0.1:8765/queued/x",
            "http://127.0.0.1:87650/queue/x",
            "http://fal.run/x",
        ):
            await client.http.get(url)
    sent = {str(r.url): r.headers.get("authorization") for r in fal.requests}
    assert sent == {
        "http://127.0.0.1:8765/queue/x": f"Key {KEY}",
        "https://fal.run/x": f"Key {KEY}",
        "https://rest.fal.ai/x": f"Key {KEY}",
        "https://v3.fal.media/x": f"Key {KEY}",
        "https://example.com/x": None,
        "https://fal.run.evil.example/x": None,
        "https://v3.fal.media.evil.example/x": None,
        "http://127.0.0.1:8765/queued/x": None,
        "http://127.0.0.1:87650/queue/x": None,
        "http://fal.run/x": None,
    }


@pytest.mark.parametrize(
    ("url", "applies"),
    [
        ("https://queue.fal.run", True),
        ("https://queue.fal.run?x=1", True),
        ("https://QUEUE.fal.run/a", True),
        ("https://queue.fal.run@evil.example/a", False),
    ],
)
def test_auth_scope_edges(url: str, applies: bool) -> None:
    assert FalAuth("k", ["https://queue.fal.run/"]).applies_to(httpx.URL(url)) is applies
