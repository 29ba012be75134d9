"""Webhook signatures made here with fresh ED25519 keys, verified as Fal's would be."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from falkit.client import JwksFetcher, verify_webhook, verify_webhook_async
from falkit.errors import FalkitError, TransportError

NOW = 1_750_000_000
BODY = json.dumps({"request_id": "r1", "status": "OK", "payload": {"images": []}}).encode()
JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    x = base64.urlsafe_b64encode(raw_public(key)).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k"}


def sign(
    key: Ed25519PrivateKey, body: bytes = BODY, timestamp: int = NOW, **names: str
) -> dict[str, str]:
    """Headers of a delivery signed the way the protocol sheet describes (written from scratch)."""
    request_id, user_id = names.get("request_id", "r1"), names.get("user_id", "u1")
    message = f"{request_id}\n{user_id}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}"
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": user_id,
        "X-Fal-Webhook-Timestamp": str(timestamp),
        "X-Fal-Webhook-Signature": key.sign(message.encode()).hex(),
    }


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_a_genuine_delivery_verifies(key: Ed25519PrivateKey) -> None:
    assert verify_webhook(BODY, sign(key), [raw_public(key)], now=NOW)


def test_any_key_of_the_set_may_verify(key: Ed25519PrivateKey) -> None:
    others = [raw_public(Ed25519PrivateKey.generate()) for _ in range(2)]
    assert verify_webhook(BODY, sign(key), [*others, raw_public(key)], now=NOW)


def test_header_names_are_case_insensitive(key: Ed25519PrivateKey) -> None:
    headers = {name.lower(): value for name, value in sign(key).items()}
    assert verify_webhook(BODY, headers, [raw_public(key)], now=NOW)
    assert verify_webhook(BODY, httpx.Headers(sign(key)), [raw_public(key)], now=NOW)


def test_a_tampered_body_fails(key: Ed25519PrivateKey) -> None:
    tampered = BODY.replace(b'"OK"', b'"ERROR"')
    assert not verify_webhook(tampered, sign(key), [raw_public(key)], now=NOW)


def test_a_body_reencoded_as_json_fails(key: Ed25519PrivateKey) -> None:
    same_data = json.dumps(json.loads(BODY), indent=1).encode()  # raw bytes matter
    assert not verify_webhook(same_data, sign(key), [raw_public(key)], now=NOW)


def test_the_wrong_key_fails(key: Ed25519PrivateKey) -> None:
    stranger = Ed25519PrivateKey.generate()
    assert not verify_webhook(BODY, sign(stranger), [raw_public(key)], now=NOW)


def test_no_keys_fails(key: Ed25519PrivateKey) -> None:
    assert not verify_webhook(BODY, sign(key), [], now=NOW)


@pytest.mark.parametrize(
    ("skew", "valid"), [(-301, False), (-300, True), (299, True), (301, False)]
)
def test_timestamps_must_be_within_the_leeway(
    key: Ed25519PrivateKey, skew: int, valid: bool
) -> None:
    headers = sign(key, timestamp=NOW + skew)
    assert verify_webhook(BODY, headers, [raw_public(key)], now=NOW) is valid


def test_a_stale_delivery_fails_even_with_a_good_signature(key: Ed25519PrivateKey) -> None:
    headers = sign(key, timestamp=NOW - 3600)
    assert not verify_webhook(BODY, headers, [raw_public(key)], now=NOW)
    assert verify_webhook(BODY, headers, [raw_public(key)], now=NOW, leeway=7200)


@pytest.mark.parametrize(
    "change",
    [
        {"X-Fal-Webhook-Signature": None},
        {"X-Fal-Webhook-Timestamp": None},
        {"X-Fal-Webhook-Request-Id": None},
        {"X-Fal-Webhook-User-Id": None},
        {"X-Fal-Webhook-Signature": "zz-not-hex"},
        {"X-Fal-Webhook-Signature": "abcd"},
        {"X-Fal-Webhook-Timestamp": "yesterday"},
        {"X-Fal-Webhook-Request-Id": "r2"},
        {"X-Fal-Webhook-User-Id": "someone-else"},
    ],
)
def test_missing_or_altered_headers_fail(
    key: Ed25519PrivateKey, change: dict[str, str | None]
) -> None:
    headers: dict[str, str] = sign(key)
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    assert not verify_webhook(BODY, headers, [raw_public(key)], now=NOW)


# ---- the JWKS, fetched and cached ----


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def jwks_server(*keysets: list[Ed25519PrivateKey]) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    replies = [{"keys": [jwk(k) for k in keys] + [{"kty": "RSA", "n": "x"}]} for keys in keysets]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=replies[min(len(seen), len(replies)) - 1])

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


async def test_jwks_is_fetched_once_and_cached_for_a_day(key: Ed25519PrivateKey) -> None:
    clock = Clock()
    http, seen = jwks_server([key])
    async with http:
        fetcher = JwksFetcher(http, clock=clock)
        assert await fetcher.keys() == [raw_public(key)]
        clock.now = 23 * 3600
        assert verify_webhook(BODY, sign(key), fetcher, now=NOW)
        assert await verify_webhook_async(BODY, sign(key), fetcher, now=NOW)
        assert len(seen) == 1
        clock.now = 24 * 3600 + 1
        await fetcher.keys()
        assert len(seen) == 2
    assert str(seen[0].url) == JWKS_URL
    assert "authorization" not in seen[0].headers


async def test_async_verification_fetches_the_keys(key: Ed25519PrivateKey) -> None:
    http, seen = jwks_server([key])
    async with http:
        fetcher = JwksFetcher(http, clock=Clock())
        assert await verify_webhook_async(BODY, sign(key), fetcher, now=NOW)
        assert not await verify_webhook_async(BODY + b" ", sign(key), fetcher, now=NOW)
    assert len(seen) == 1  # a bad signature right after a fetch does not refetch


async def test_a_rotated_key_is_picked_up_by_a_refetch(key: Ed25519PrivateKey) -> None:
    rotated = Ed25519PrivateKey.generate()
    clock = Clock()
    http, seen = jwks_server([key], [key, rotated])
    async with http:
        fetcher = JwksFetcher(http, clock=clock)
        assert not await verify_webhook_async(BODY, sign(rotated), fetcher, now=NOW)
        clock.now = 3600  # the cached set is an hour old: a failure may refresh it
        assert await verify_webhook_async(BODY, sign(rotated), fetcher, now=NOW)
    assert len(seen) == 2


def test_sync_verification_needs_loaded_keys(key: Ed25519PrivateKey) -> None:
    fetcher = JwksFetcher(httpx.AsyncClient(), clock=Clock())
    with pytest.raises(FalkitError, match="verify_webhook_async"):
        verify_webhook(BODY, sign(key), fetcher, now=NOW)


async def test_jwks_fetch_failures_are_falkit_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        with pytest.raises(TransportError, match="webhook keys"):
            await JwksFetcher(http).keys()

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"keys": []}))
    ) as http:
        with pytest.raises(FalkitError, match="no ED25519 key"):
            await JwksFetcher(http).keys()
