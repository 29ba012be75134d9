"""Endpoint ids and the queue URLs built from them.

An endpoint id is ``[namespace/]owner/alias[/path…]`` (namespaces: ``workflows``, ``comfy``).
Submit and run use the full id; a request's status, result and cancel URLs live under
``[namespace/]owner/alias`` only — Fal drops the sub-path there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from falkit.errors import ValidationError
from falkit.limits import endpoint_id_problem, segment_problem
from falkit.types import RequestHandle

NAMESPACES = frozenset({"workflows", "comfy"})
_LEGACY = re.compile(r"^(\d+)-([A-Za-z0-9._~-]+)$")
_EXAMPLE = "owner/alias[/path], e.g. fal-ai/flux/dev"


@dataclass(frozen=True)
class EndpointId:
    """A parsed endpoint id."""

    owner: str
    alias: str
    path: str = ""
    namespace: str = ""

    @classmethod
    def parse(cls, endpoint_id: str) -> EndpointId:
        """Split an id; a legacy ``1234-app`` becomes ``1234/app``; anything else is rejected.

        Every segment is checked (see :func:`falkit.limits.endpoint_id_problem`): the id is
        pasted into URL paths that carry the key, so ``..`` or an escape must never get there.
        """
        parts = endpoint_id.strip().strip("/").split("/")
        if len(parts) == 1 and (legacy := _LEGACY.match(parts[0])):
            parts = [legacy.group(1), legacy.group(2)]
        why = endpoint_id_problem("/".join(parts))
        if why is not None:
            raise ValidationError.field(
                "endpoint_id", f"{endpoint_id[:80]!r} is not a Fal endpoint id: it {why}", _EXAMPLE
            )
        namespace = parts.pop(0) if len(parts) > 2 and parts[0] in NAMESPACES else ""
        return cls(parts[0], parts[1], "/".join(parts[2:]), namespace)

    @property
    def app(self) -> str:
        """``[namespace/]owner/alias``: where a request's status, result and cancel live."""
        prefix = f"{self.namespace}/" if self.namespace else ""
        return f"{prefix}{self.owner}/{self.alias}"

    @property
    def full(self) -> str:
        """The whole id, sub-path included, as submit and run use it."""
        return f"{self.app}/{self.path}" if self.path else self.app


def check_request_id(request_id: str) -> str:
    """A request id safe to put in a URL path (Fal's are UUIDs): one segment, not ``..``."""
    if segment_problem(request_id or "") is not None or len(request_id) > 128:
        raise ValidationError.field("request_id", f"{request_id[:80]!r} is not a Fal request id")
    return request_id


def check_under(base: str, url: str, field: str = "endpoint_id") -> str:
    """``url`` as sent, if it stays under the configured ``base``; else ValidationError.

    Belt and braces behind the segment checks: httpx resolves ``.``/``..`` segments, so the
    normalised URL is what is compared.
    """
    sent = str(httpx.URL(url))
    if not sent.startswith(base.rstrip("/") + "/"):
        raise ValidationError.field(field, f"the URL {sent[:120]!r} leaves {base!r}")
    return url


def rebuild_handle(queue_url: str, endpoint_id: str, request_id: str) -> RequestHandle:
    """The handle of a request from its ids alone: ``{queue_url}/{owner}/{alias}/requests/{id}``."""
    app = EndpointId.parse(endpoint_id).app
    base = f"{queue_url.rstrip('/')}/{app}/requests/{check_request_id(request_id)}"
    check_under(queue_url, base)
    return RequestHandle(
        endpoint_id=endpoint_id,
        request_id=request_id,
        status_url=f"{base}/status",
        response_url=base,
        cancel_url=f"{base}/cancel",
    )


def stream_url(status_url: str) -> str:
    """The SSE status stream next to a status URL (``…/status`` → ``…/status/stream``)."""
    url = httpx.URL(status_url)
    return str(url.copy_with(path=url.path.rstrip("/") + "/stream"))
