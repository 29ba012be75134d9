"""Checking that a webhook call really comes from Fal, and accepting each delivery once.

Fal signs each delivery with ED25519. The signed message is four lines joined by ``\\n``: the
request id, the user id, the unix timestamp (from the ``X-Fal-Webhook-*`` headers) and the hex
SHA-256 of the raw body. A delivery is genuine when the signature verifies against any key of
Fal's JWKS and the timestamp is within ``leeway`` seconds of now; with a :class:`ReplayCache` a
genuine delivery is accepted once (the same request id and timestamp again is a replay). The
JWKS is fetched over HTTP and cached for at most 24 hours.

**For a receiver** (e.g. ``POST /webhooks/fal``) call :func:`check_webhook_async` with the raw
body, the request headers, one long-lived :class:`JwksFetcher` and one :class:`ReplayCache`. It
never raises; its :class:`WebhookCheck` says what to do (``check.ok`` only for ACCEPTED):

=================  ==========================================================  ===========
verdict            meaning                                                     suggested
=================  ==========================================================  ===========
ACCEPTED           signed by Fal, recent, first time seen: act on the body     200
MISSING_HEADERS    one of the four ``X-Fal-Webhook-*`` headers is absent       400
BAD_TIMESTAMP      the timestamp is not 1-12 ASCII digits (unix seconds)       400
STALE              the timestamp is more than ``leeway`` seconds from now      401
BAD_SIGNATURE      not hex, or no key of Fal's set verifies it                 401
REPLAYED           this request id and timestamp were accepted before          409
KEYS_UNAVAILABLE   Fal's key set could not be fetched or holds no usable key   503 (Fal
                   (``check.reason`` says why)                                 retries)
=================  ==========================================================  ===========

Only ACCEPTED deliveries enter the replay cache, so a forged or late one never blocks the
genuine one. :func:`verify_webhook` and :func:`verify_webhook_async` are the older yes/no
forms: they never raise on bad input either; the async one raises FalkitError (never another
exception) when the key set cannot be fetched.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import heapq
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from falkit.errors import ApiError, FalkitError, TransportError, error_from_response

if TYPE_CHECKING:
    import httpx

DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
JWKS_TTL = 24 * 3600.0
#: A failed verification may refetch the JWKS (key rotation), but not more often than this.
MIN_REFRESH_INTERVAL = 600.0
#: A key set bigger than this is refused (Fal's holds a few keys, well under a kilobyte).
MAX_JWKS_BYTES = 256 * 1024
#: Unix seconds as sent in X-Fal-Webhook-Timestamp: plain ASCII digits, no sign, no exponent.
TIMESTAMP = re.compile(r"[0-9]{1,12}")
DEFAULT_LEEWAY = 300.0
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
        """The JWKS document; every failure a FalkitError (TransportError or ApiError)."""
        import httpx

        try:
            response = await self._http.get(self.url)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TransportError(
                f"could not fetch Fal's webhook keys from {self.url}: {type(exc).__name__}"
            ) from exc
        if not response.is_success:
            raise error_from_response(response)
        if len(response.content) > MAX_JWKS_BYTES:
            raise ApiError(f"the JWKS at {self.url} is over {MAX_JWKS_BYTES} bytes")
        try:
            return response.json()
        except (ValueError, RecursionError):
            raise ApiError(f"the JWKS at {self.url} is not JSON") from None


class Verdict(enum.Enum):
    """Why a delivery was accepted or refused (see the module docstring for what to answer)."""

    ACCEPTED = "accepted"
    MISSING_HEADERS = "missing_headers"
    BAD_TIMESTAMP = "bad_timestamp"
    STALE = "stale"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED = "replayed"
    KEYS_UNAVAILABLE = "keys_unavailable"


@dataclass(frozen=True)
class WebhookCheck:
    """The outcome of checking one delivery: a verdict, a one-line reason, and the signed
    request id and timestamp when the headers carried them."""

    verdict: Verdict
    reason: str
    request_id: str | None = None
    timestamp: int | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.ACCEPTED

    def __bool__(self) -> bool:
        return self.ok


class ReplayCache:
    """Deliveries accepted lately, by (request id, timestamp), so each is accepted once.

    An entry lives until its timestamp leaves the leeway window (then the timestamp check
    refuses a replay anyway). Bounded: past ``max_entries`` the entry that would expire first
    is dropped (size it above the deliveries expected in twice the leeway).
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._expiry: dict[tuple[str, int], float] = {}
        self._heap: list[tuple[float, tuple[str, int]]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def first_time(self, request_id: str, timestamp: int, *, now: float, leeway: float) -> bool:
        """Remember this delivery; False when it was remembered already (a replay)."""
        self._expire(now)
        key = (request_id, timestamp)
        if key in self._expiry:
            return False
        expires = timestamp + leeway
        self._expiry[key] = expires
        heapq.heappush(self._heap, (expires, key))
        while len(self._expiry) > self.max_entries:
            self._pop()
        return True

    def _expire(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            self._pop()

    def _pop(self) -> None:
        expires, key = heapq.heappop(self._heap)
        if self._expiry.get(key) == expires:
            del self._expiry[key]


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


def check_webhook(
    body: bytes,
    headers: Mapping[str, str],
    jwks: Sequence[bytes] | JwksFetcher,
    *,
    now: float | None = None,
    leeway: float = DEFAULT_LEEWAY,
    replay: ReplayCache | None = None,
) -> WebhookCheck:
    """Check one delivery against keys at hand (a list of raw ED25519 public keys, or a
    JwksFetcher whose keys are loaded); never raises. See the module docstring."""
    values = _lower(headers)
    missing = [name for name in HEADERS if not values.get(name)]
    if missing:
        return WebhookCheck(Verdict.MISSING_HEADERS, "missing " + ", ".join(missing))
    request_id, user_id, stamp, signature_hex = (values[name] for name in HEADERS)
    if not TIMESTAMP.fullmatch(stamp):
        why = f"timestamp {stamp[:24]!r} is not unix seconds"
        return WebhookCheck(Verdict.BAD_TIMESTAMP, why, request_id)
    sent_at = int(stamp)
    current = time.time() if now is None else now
    if abs(current - sent_at) > leeway:
        why = f"timestamp is {abs(current - sent_at):.0f} s from now (leeway {leeway:g} s)"
        return WebhookCheck(Verdict.STALE, why, request_id, sent_at)
    keys = _keys_at_hand(jwks)
    if keys is None:
        why = (
            "webhook keys not loaded: await fetcher.keys() first, "
            "or use check_webhook_async (verify_webhook_async)"
        )
        return WebhookCheck(Verdict.KEYS_UNAVAILABLE, why, request_id, sent_at)
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return WebhookCheck(Verdict.BAD_SIGNATURE, "signature is not hex", request_id, sent_at)
    if not _verify_any(keys, signature, signed_message(request_id, user_id, stamp, body)):
        why = "signature does not verify against Fal's keys"
        return WebhookCheck(Verdict.BAD_SIGNATURE, why, request_id, sent_at)
    if replay is not None and not replay.first_time(
        request_id, sent_at, now=current, leeway=leeway
    ):
        why = "this delivery (request id and timestamp) was accepted before"
        return WebhookCheck(Verdict.REPLAYED, why, request_id, sent_at)
    return WebhookCheck(Verdict.ACCEPTED, "signed by Fal", request_id, sent_at)


async def check_webhook_async(
    body: bytes,
    headers: Mapping[str, str],
    fetcher: JwksFetcher,
    *,
    now: float | None = None,
    leeway: float = DEFAULT_LEEWAY,
    replay: ReplayCache | None = None,
) -> WebhookCheck:
    """check_webhook with Fal's key set fetched as needed (and fetched again once when a
    signature fails against keys older than MIN_REFRESH_INTERVAL: a rotated key). Never
    raises: a key set that cannot be had is KEYS_UNAVAILABLE with the reason."""
    first = check_webhook(body, headers, [], now=now, leeway=leeway)
    if first.verdict in (Verdict.MISSING_HEADERS, Verdict.BAD_TIMESTAMP, Verdict.STALE):
        return first  # refused on its headers alone: no key set needed
    failed = await _load(fetcher, refresh=False)
    if failed is not None:
        return WebhookCheck(Verdict.KEYS_UNAVAILABLE, failed, first.request_id, first.timestamp)
    check = check_webhook(body, headers, fetcher, now=now, leeway=leeway, replay=replay)
    age = fetcher.age
    if check.verdict is not Verdict.BAD_SIGNATURE or age is None or age < MIN_REFRESH_INTERVAL:
        return check
    failed = await _load(fetcher, refresh=True)
    if failed is not None:
        return WebhookCheck(Verdict.KEYS_UNAVAILABLE, failed, check.request_id, check.timestamp)
    return check_webhook(body, headers, fetcher, now=now, leeway=leeway, replay=replay)


async def _load(fetcher: JwksFetcher, *, refresh: bool) -> str | None:
    """Load the key set; None when done, else why it failed."""
    try:
        await fetcher.keys(refresh=refresh)
    except FalkitError as exc:
        return str(exc)
    except Exception as exc:  # a bug or an odd transport: still an answer, not a crash
        return f"could not load Fal's webhook keys: {type(exc).__name__}: {exc}"
    return None


def _keys_at_hand(jwks: Sequence[bytes] | JwksFetcher) -> list[bytes] | None:
    if isinstance(jwks, JwksFetcher):
        return jwks.cached_keys
    return list(jwks)


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    jwks: Sequence[bytes] | JwksFetcher,
    *,
    now: float | None = None,
    leeway: float = DEFAULT_LEEWAY,
    replay: ReplayCache | None = None,
) -> bool:
    """Whether a delivery is signed by Fal and recent (and, with ``replay``, new); False on
    any missing or bad part. Raises FalkitError only when ``jwks`` is a JwksFetcher whose keys
    were never loaded (``await fetcher.keys()``; :func:`verify_webhook_async` does that)."""
    check = check_webhook(body, headers, jwks, now=now, leeway=leeway, replay=replay)
    if check.verdict is Verdict.KEYS_UNAVAILABLE:
        raise FalkitError(check.reason)
    return check.ok


async def verify_webhook_async(
    body: bytes,
    headers: Mapping[str, str],
    fetcher: JwksFetcher,
    *,
    now: float | None = None,
    leeway: float = DEFAULT_LEEWAY,
    replay: ReplayCache | None = None,
) -> bool:
    """verify_webhook with the JWKS fetched (and refetched once on rotation) as needed.

    Raises FalkitError (and nothing else) when the key set cannot be fetched; prefer
    :func:`check_webhook_async`, which says so in its result instead.
    """
    check = await check_webhook_async(body, headers, fetcher, now=now, leeway=leeway, replay=replay)
    if check.verdict is Verdict.KEYS_UNAVAILABLE:
        raise FalkitError(check.reason)
    return check.ok
