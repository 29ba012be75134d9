"""Webhooks: payloads, ED25519 signatures checked independently against the JWKS, retries."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .conftest import ClientFactory, Receiver, engine_of, submit


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def _verify(jwks: dict[str, Any], headers: dict[str, str], body: bytes) -> None:
    """What a receiver does, written from the protocol sheet (not from the emulator's code)."""
    message = "\n".join(
        [
            headers["x-fal-webhook-request-id"],
            headers["x-fal-webhook-user-id"],
            headers["x-fal-webhook-timestamp"],
            hashlib.sha256(body).hexdigest(),
        ]
    ).encode()
    signature = bytes.fromhex(headers["x-fal-webhook-signature"])
    for key in jwks["keys"]:
        raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
        except InvalidSignature:
            continue
        return
    raise InvalidSignature("no key in the JWKS verifies this delivery")


async def test_delivery_is_signed_and_verifies(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    handle = await submit(
        client, "fal-ai/flux/dev", {"prompt": "hook"}, params={"fal_webhook": receiver.url}
    )
    await _until(lambda: len(receiver.deliveries) == 1)
    headers, body = receiver.deliveries[0]
    payload = receiver.json_bodies()[0]
    assert payload["request_id"] == payload["gateway_request_id"] == handle["request_id"]
    assert payload["status"] == "OK"
    assert payload["payload"]["images"][0]["url"].startswith("http://emulator/cdn/files/")
    assert headers["x-fal-webhook-request-id"] == handle["request_id"]
    assert headers["x-fal-webhook-user-id"] == "emulator-user"
    jwks = (await client.get("/rest/.well-known/jwks.json")).json()
    assert jwks["keys"][0]["kty"] == "OKP"
    assert jwks["keys"][0]["crv"] == "Ed25519"
    _verify(jwks, headers, body)
    with pytest.raises(InvalidSignature):
        _verify(jwks, headers, body.replace(b'"OK"', b'"ERROR"'))
    with pytest.raises(InvalidSignature):
        _verify(jwks, {**headers, "x-fal-webhook-timestamp": "1"}, body)


async def test_failed_job_sends_error_webhook(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await submit(
        client,
        "fal-ai/flux/schnell",
        {"prompt": "x", "num_images": 7},
        params={"fal_webhook": receiver.url},
    )
    await _until(lambda: len(receiver.deliveries) == 1)
    payload = receiver.json_bodies()[0]
    assert payload["status"] == "ERROR"
    assert payload["error"] == "Invalid status code: 422"
    assert payload["payload"]["detail"][0]["loc"] == ["body", "num_images"]


async def test_failing_receiver_is_retried(make_client: ClientFactory, receiver: Receiver) -> None:
    client = await make_client(webhook_retry_delays=(0.05, 0.05, 0.05), user_id="acct-7")
    receiver.fail_first = 2
    await submit(client, "fal-ai/flux/dev", {"prompt": "x"}, params={"fal_webhook": receiver.url})
    await _until(lambda: len(receiver.deliveries) == 1)
    stats = engine_of(client).stats
    await _until(lambda: stats.webhooks_delivered == 1)
    assert receiver.attempts == 3
    assert stats.webhook_attempts == 3
    headers, body = receiver.deliveries[0]
    assert headers["x-fal-webhook-user-id"] == "acct-7"
    _verify((await client.get("/rest/.well-known/jwks.json")).json(), headers, body)


async def test_gives_up_after_the_configured_retries(
    make_client: ClientFactory, receiver: Receiver
) -> None:
    client = await make_client(webhook_retry_delays=(0.02,))
    receiver.fail_first = 10
    await submit(client, "fal-ai/flux/dev", {"prompt": "x"}, params={"fal_webhook": receiver.url})
    stats = engine_of(client).stats
    await _until(lambda: stats.webhooks_failed == 1)
    assert receiver.attempts == 2
    assert not receiver.deliveries


async def test_unreachable_receiver_counts_as_failure(make_client: ClientFactory) -> None:
    client = await make_client(webhook_retry_delays=(0.01,))
    await submit(
        client,
        "fal-ai/flux/dev",
        {"prompt": "x"},
        params={"fal_webhook": "http://127.0.0.1:9/hook"},
    )
    stats = engine_of(client).stats
    await _until(lambda: stats.webhooks_failed == 1)
    assert stats.webhook_attempts == 2
