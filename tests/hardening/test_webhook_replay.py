"""Webhook checks: each genuine delivery accepted once; every refusal a typed answer, never an
exception, whatever arrives (bad timestamps, an unreachable or broken key set)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from falkit.client.webhooks import (
    JwksFetcher,
    ReplayCache,
    Verdict,
    check_webhook,
    check_webhook_async,
    verify_webhook,
    verify_webhook_async,
)
from falkit.errors import FalkitError
from tests.client.test_webhooks import jwk, raw_public

NOW = 1_750_000_000
BODY = json.dumps({"request_id": "r1", "status": "OK", "payload": {"images": []}}).encode()


def sign(
    key: Ed25519PrivateKey, timestamp: int | str = NOW, request_id: str = "r1"
) -> dict[str, str]:
    stamp = str(timestamp)
    message = f"{request_id}\nu1\n{stamp}\n{hashlib.sha256(BODY).hexdigest()}"
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": "u1",
        "X-Fal-Webhook-Timestamp": stamp,
        "X-Fal-Webhook-Signature": key.sign(message.encode()).hex(),
    }


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _fetcher(handler: Callable[[httpx.Request], httpx.Response]) -> JwksFetcher:
    return JwksFetcher(httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def test_a_delivery_is_accepted_once(key: Ed25519PrivateKey) -> None:
    keys, replay = [raw_public(key)], ReplayCache()
    first = check_webhook(BODY, sign(key), keys, now=NOW, replay=replay)
    again = check_webhook(BODY, sign(key), keys, now=NOW + 10, replay=replay)
    assert (first.verdict, again.verdict) == (Verdict.ACCEPTED, Verdict.REPLAYED)
    assert first.ok
    assert not again
    assert again.request_id == "r1"
    # Fal's own retry of the same request is a new delivery (a new timestamp): accepted.
    retried = check_webhook(BODY, sign(key, NOW + 60), keys, now=NOW + 60, replay=replay)
    assert retried.ok
    assert not verify_webhook(BODY, sign(key), keys, now=NOW + 20, replay=replay)


def test_only_accepted_deliveries_enter_the_cache(key: Ed25519PrivateKey) -> None:
    """A forged copy (bad signature) arriving first must not block the genuine one."""
    keys, replay = [raw_public(key)], ReplayCache()
    forged = sign(Ed25519PrivateKey.generate())
    assert (
        check_webhook(BODY, forged, keys, now=NOW, replay=replay).verdict is Verdict.BAD_SIGNATURE
    )
    assert check_webhook(BODY, sign(key), keys, now=NOW, replay=replay).ok
    assert len(replay) == 1


def test_the_cache_is_bounded_and_forgets_with_the_window(key: Ed25519PrivateKey) -> None:
    keys, replay = [raw_public(key)], ReplayCache(max_entries=3)
    for i in range(5):
        headers = sign(key, NOW, request_id=f"r{i}")
        assert check_webhook(BODY, headers, keys, now=NOW, replay=replay).ok
    assert len(replay) <= 3
    later = NOW + 301  # past the leeway the entries expire (a replay is STALE by then)
    assert check_webhook(BODY, sign(key, later), keys, now=later, replay=replay).ok
    assert len(replay) == 1
    with pytest.raises(ValueError):
        ReplayCache(max_entries=0)


@pytest.mark.parametrize(
    ("stamp", "verdict"),
    [
        ("9" * 5000, Verdict.BAD_TIMESTAMP),  # overlong: once an OverflowError
        ("1" * 13, Verdict.BAD_TIMESTAMP),
        ("1.75e9", Verdict.BAD_TIMESTAMP),
        ("-1750000000", Verdict.BAD_TIMESTAMP),
        (" 1750000000", Verdict.BAD_TIMESTAMP),
        ("١٧٥٠٠٠٠٠٠٠", Verdict.BAD_TIMESTAMP),  # digits, but not ASCII ones
        ("nan", Verdict.BAD_TIMESTAMP),
        (str(NOW - 301), Verdict.STALE),
        (str(NOW + 301), Verdict.STALE),
        ("", Verdict.MISSING_HEADERS),
    ],
)
async def test_malformed_timestamps_are_answers_not_exceptions(
    key: Ed25519PrivateKey, stamp: str, verdict: Verdict
) -> None:
    headers = sign(key, stamp)
    assert check_webhook(BODY, headers, [raw_public(key)], now=NOW).verdict is verdict
    assert verify_webhook(BODY, headers, [raw_public(key)], now=NOW) is False
    unreachable = _fetcher(lambda request: httpx.Response(500))
    assert (await check_webhook_async(BODY, headers, unreachable, now=NOW)).verdict is verdict


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused")


def _deep(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"[" * 100_000 + b"]" * 100_000)


def _raise_odd(request: httpx.Request) -> httpx.Response:
    raise RuntimeError("a transport that breaks its contract")


@pytest.mark.parametrize(
    ("handler", "why"),
    [
        (_refuse, "could not fetch"),
        (lambda r: httpx.Response(503, text="down"), "503"),
        (lambda r: httpx.Response(200, text="not json"), "not JSON"),
        (_deep, "not JSON"),
        (lambda r: httpx.Response(200, json={"keys": []}), "no ED25519 key"),
        (
            lambda r: httpx.Response(
                200, json={"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "%%"}]}
            ),
            "no ED25519 key",
        ),
        (lambda r: httpx.Response(200, content=b" " * (300 * 1024)), "bytes"),
        (_raise_odd, "RuntimeError"),
    ],
)
async def test_key_set_failures_are_answers_not_exceptions(
    key: Ed25519PrivateKey, handler: Any, why: str
) -> None:
    fetcher = _fetcher(handler)
    check = await check_webhook_async(BODY, sign(key), fetcher, now=NOW, replay=ReplayCache())
    assert check.verdict is Verdict.KEYS_UNAVAILABLE
    assert why in check.reason
    assert check.request_id == "r1"
    with pytest.raises(FalkitError):  # the older yes/no form: a FalkitError, nothing rawer
        await verify_webhook_async(BODY, sign(key), fetcher, now=NOW)


async def test_the_async_check_accepts_once_with_fetched_keys(key: Ed25519PrivateKey) -> None:
    fetcher = _fetcher(lambda r: httpx.Response(200, json={"keys": [jwk(key)]}))
    replay = ReplayCache()
    first = await check_webhook_async(BODY, sign(key), fetcher, now=NOW, replay=replay)
    again = await check_webhook_async(BODY, sign(key), fetcher, now=NOW, replay=replay)
    assert (first.verdict, again.verdict) == (Verdict.ACCEPTED, Verdict.REPLAYED)
    assert await verify_webhook_async(BODY, sign(key, NOW + 1), fetcher, now=NOW, replay=replay)
