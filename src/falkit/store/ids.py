"""Readable, sortable, unique ids: a prefix, then 26 characters of Crockford base32.

Like a ULID: 48 bits of milliseconds then 80 random bits, so ids sort by creation time; within
one millisecond the random part is incremented, so ids made by one process stay in order.
"""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford: no i, l, o, u
_RANDOM_BITS = 80
_lock = threading.Lock()
_last = (0, 0)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _next_parts() -> tuple[int, int]:
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_random = _last
        if millis <= last_millis and last_random + 1 < 1 << _RANDOM_BITS:
            millis, rand = last_millis, last_random + 1
        else:
            rand = secrets.randbits(_RANDOM_BITS - 1)  # headroom for increments
        _last = (millis, rand)
        return millis, rand


def new_id(prefix: str) -> str:
    """A new id such as ``j_01jd5x3k8v2m4q6r8t0w2y4z6a``."""
    millis, rand = _next_parts()
    return f"{prefix}_{_encode((millis << _RANDOM_BITS) | rand, 26)}"
