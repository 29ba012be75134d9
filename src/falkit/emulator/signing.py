"""Webhooks as Fal sends them: ED25519-signed POSTs, retried, with a JWKS to verify them.

The signed message is four lines joined by ``\\n``: request id, user id, unix timestamp, and the
hex SHA-256 of the raw body; the signature goes hex-encoded in ``X-Fal-Webhook-Signature``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from falkit.emulator.config import Stats

log = logging.getLogger("falkit.emulator")


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """The exact bytes Fal signs for a webhook delivery."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join([request_id, user_id, timestamp, digest]).encode()


class WebhookSigner:
    """This emulator's signing key (made on first use) and its public JWKS."""

    def __init__(self) -> None:
        self._key: Ed25519PrivateKey | None = None

    @property
    def key(self) -> Ed25519PrivateKey:
        if self._key is None:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            self._key = Ed25519PrivateKey.generate()
        return self._key

    def public_bytes(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def jwks(self) -> dict[str, Any]:
        raw = self.public_bytes()
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        kid = hashlib.sha256(raw).hexdigest()[:16]
        return {
            "keys": [
                {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}
            ]
        }

    def headers(self, request_id: str, user_id: str, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        signature = self.key.sign(signed_message(request_id, user_id, timestamp, body)).hex()
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": user_id,
            "X-Fal-Webhook-Timestamp": timestamp,
            "X-Fal-Webhook-Signature": signature,
        }


async def deliver(
    url: str,
    payload: dict[str, Any],
    *,
    signer: WebhookSigner,
    user_id: str,
    delays: tuple[float, ...],
    stats: Stats,
) -> bool:
    """POST the payload until a 2xx answer, waiting ``delays`` between attempts."""
    import httpx

    body = json.dumps(payload).encode()
    request_id = str(payload["request_id"])
    async with httpx.AsyncClient(timeout=10.0) as client:
        for wait in (0.0, *delays):
            if wait:
                await asyncio.sleep(wait)
            stats.webhook_attempts += 1
            headers = {
                "content-type": "application/json",
                **signer.headers(request_id, user_id, body),
            }
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                log.info("webhook to %s failed: %s", url, exc)
                continue
            if response.is_success:
                stats.webhooks_delivered += 1
                return True
            log.info("webhook to %s answered %s", url, response.status_code)
    stats.webhooks_failed += 1
    return False
