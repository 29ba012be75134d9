"""Checking that a webhook call really comes from Fal.

Fal signs each delivery with ED25519. The signed message is four lines joined by ``\\n``: the
request id, the user id, the unix timestamp (from the ``X-Fal-Webhook-*`` headers) and the hex
SHA-256 of the raw body. A delivery is genuine when the signature verifies against any key of
Fal's JWKS and the timestamp is within ``leeway`` seconds of now (no replays of old calls).
The JWKS is fetched over HTTP and cached for at most 24 hours.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from falkit.errors import ApiError, FalkitError, TransportError, error_from_response

if TYPE_CHECKING:
    import httpx

DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
JWKS_TTL = 24 * 3600.0
#: A failed verification may refetch the JWKS (key rotation), but not more often than this.
MIN_REFRESH_INTERVAL = 600.0
HEADERS = (
    "x-fal-webhook-request-id",
    "x-fal-webhook-user-id",
    "x-fal-webhook-timestamp",
    "x-fal-webhook-signature",
)


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """The bytes Fal signs for a delivery."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((request_id, user_id, timestamp, digest)).encode("utf-8")


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def keys_from_jwks(document: Any) -> list[bytes]:
    """The raw ED25519 public keys (``x``) of a JWKS document."""
    found = document.get("keys") if isinstance(document, dict) else None
    keys = []
    for jwk in found if isinstance(found, list) else []:
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        try:
            raw = _b64url(str(jwk.get("x", "")))
        except ValueError:
            continue
        if len(raw) == 32:
            keys.append(raw)
    return keys


class JwksFetcher:
    """Fal's webhook signing keys, fetched on demand and cached for ``ttl`` seconds."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str = DEFAULT_JWKS_URL,
        *,
        ttl: float = JWKS_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.url = url
        self.ttl = min(ttl, JWKS_TTL)
        self._clock = clock
        self._keys: list[bytes] | None = None
        self._fetched_at = 0.0

    @property
    def age(self) -> float | None:
        """Seconds since the keys were fetched, or None before the first fetch."""
        return None if self._keys is None else self._clock() - self._fetched_at

    @property
    def cached_keys(self) -> list[bytes] | None:
        """The keys if fetched and still fresh, else None."""
        age = self.age
        return self._keys if age is not None and age < self.ttl else None

    async def keys(self, *, refresh: bool = False) -> list[bytes]:
        """The keys, from the cache unless stale or ``refresh`` is asked for."""
        cached = None if refresh else self.cached_keys
        if cached is not None:
            return cached
        keys = keys_from_jwks(await self._fetch())
        if not keys:
            raise ApiError(f"the JWKS at {self.url} holds no ED25519 key")
        self._keys, self._fetched_at = keys, self._clock()
        return keys

    async def _fetch(self) -> Any:
        import httpx

        try:
            response = await self._http.get(self.url)
        except httpx.HTTPError as exc:
            raise TransportError(
                f"could not fetch Fal's webhook keys from {self.url}: {type(exc).__name__}"
            ) from exc
        if not response.is_success:
            raise error_from_response(response)
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"the JWKS at {self.url} is not JSON") from None


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


def _verify_any(keys: Sequence[bytes], signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    for key in keys:
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    jwks: Sequence[bytes] | JwksFetcher,
    *,
    now: float | None = None,
    leeway: float = 300,
) -> bool:
    """Whether a delivery is signed by Fal and recent; False on any missing or bad part.

    ``jwks`` is a list of raw ED25519 public keys, or a JwksFetcher whose keys were loaded
    (``await fetcher.keys()``; :func:`verify_webhook_async` does that for you).
    """
    if isinstance(jwks, JwksFetcher):
        keys = jwks.cached_keys
        if keys is None:
            raise FalkitError(
                "webhook keys not loaded: await fetcher.keys() first, or use verify_webhook_async"
            )
    else:
        keys = list(jwks)
    values = _lower(headers)
    if not all(values.get(name) for name in HEADERS):
        return False
    request_id, user_id, timestamp, signature_hex = (values[name] for name in HEADERS)
    try:
        sent_at = int(timestamp)
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > leeway:
        return False
    return _verify_any(keys, signature, signed_message(request_id, user_id, timestamp, body))


async def verify_webhook_async(
    body: bytes,
    headers: Mapping[str, str],
    fetcher: JwksFetcher,
    *,
    now: float | None = None,
    leeway: float = 300,
) -> bool:
    """verify_webhook with the JWKS fetched (and refetched once on rotation) as needed."""
    await fetcher.keys()
    if verify_webhook(body, headers, fetcher, now=now, leeway=leeway):
        return True
    age = fetcher.age
    if age is None or age < MIN_REFRESH_INTERVAL:
        return False
    await fetcher.keys(refresh=True)
    return verify_webhook(body, headers, fetcher, now=now, leeway=leeway)
