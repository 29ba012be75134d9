"""falkit's platform layer: the one async HTTP client that talks to Fal.

Modules: ``queue`` (FalClient), ``http`` (auth, retries, error mapping), ``retry`` (pure retry
rules), ``endpoints`` (ids and URLs), ``status`` (status parsing, log dedupe), ``storage``
(uploads, data URIs), ``webhooks`` (signature verification, replay cache), ``platform`` (Fal's
platform API: request history).
"""

from __future__ import annotations

from falkit.client.http import RequestStats
from falkit.client.queue import FalClient
from falkit.client.retry import RetryPolicy, retry_delay, should_retry
from falkit.client.storage import data_uri
from falkit.client.webhooks import (
    JwksFetcher,
    ReplayCache,
    WebhookCheck,
    check_webhook,
    check_webhook_async,
    verify_webhook,
    verify_webhook_async,
)

__all__ = [
    "FalClient",
    "JwksFetcher",
    "ReplayCache",
    "RequestStats",
    "RetryPolicy",
    "WebhookCheck",
    "check_webhook",
    "check_webhook_async",
    "data_uri",
    "retry_delay",
    "should_retry",
    "verify_webhook",
    "verify_webhook_async",
]
