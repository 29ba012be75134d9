"""Fal's webhooks: verify each delivery, then finish its job without asking Fal anything.

With FALKIT_PUBLIC_URL set every submit carries ``{public}/webhooks/fal``, and the engine does
not follow such a job until its grace period has passed. A delivery is accepted only when all
four ``X-Fal-Webhook-*`` headers are there, its timestamp is within the leeway (5 minutes), its
ED25519 signature verifies against Fal's key set (JWKS, cached) and that delivery (request id and
timestamp) was not accepted before: falkit.client.webhooks.check_webhook_async, the check the
library offers every app, with its replay cache.
Refusals are logged and answered 4xx: 400 malformed, 401 bad signature or late, 409 replayed.

An ``OK`` delivery with an output finishes its job through ``engine.deliver``: the job's images
are downloaded at once, so a one-image job costs two requests to Fal (submit and download). An
``ERROR`` delivery (or one without an output) has the job followed now, which fetches Fal's
own account of the failure. A delivery for a request this library does not know yet is a 404,
so Fal retries it; one for a job that has ended already is a 200 with nothing done.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from falkit.client.webhooks import (
    DEFAULT_JWKS_URL,
    JwksFetcher,
    ReplayCache,
    Verdict,
    check_webhook_async,
)
from falkit.types import FalResponse
from falkit.web.errors import ErrorBody, error_response
from falkit.web.state import WebState, web_state

if TYPE_CHECKING:
    import httpx

    from falkit.service import FalService
    from falkit.service.engine import JobEngine
    from falkit.web.options import WebOptions

logger = logging.getLogger("falkit.web.webhooks")
WAIT_FOR_SUBMIT = 5.0
"""How long a delivery that beat its own submit answer waits for the job to take its id."""


REFUSALS: dict[Verdict, tuple[int, str]] = {
    Verdict.MISSING_HEADERS: (400, "missing_headers"),
    Verdict.BAD_TIMESTAMP: (400, "bad_timestamp"),
    Verdict.STALE: (401, "late"),
    Verdict.BAD_SIGNATURE: (401, "bad_signature"),
    Verdict.REPLAYED: (409, "replayed"),
    Verdict.KEYS_UNAVAILABLE: (503, "jwks_unavailable"),  # Fal retries; so may we then
}
"""The answer to each refusal: its HTTP status and the word in the body and the log."""


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class WebhookReceiver:
    """Checks deliveries and hands their outcome to the job engine."""

    def __init__(self, service: FalService, options: WebOptions) -> None:
        self.service = service
        self.options = options
        self.replays = ReplayCache()
        self.counts: Counter[str] = Counter()
        self._http: httpx.AsyncClient | None = None
        self._fetcher: JwksFetcher | None = None

    @property
    def enabled(self) -> bool:
        return self.options.webhook_url is not None

    def fetcher(self) -> JwksFetcher:
        """Fal's key set over a plain client of its own (the Fal key is never sent there)."""
        if self._fetcher is None:
            import httpx

            self._http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
            self._fetcher = JwksFetcher(self._http, self.options.jwks_url or DEFAULT_JWKS_URL)
        return self._fetcher

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = self._fetcher = None

    async def receive(
        self, body: bytes, headers: Mapping[str, str], peer: str
    ) -> tuple[int, dict[str, Any]]:
        """Check a delivery and act on it: (HTTP status, answer)."""
        try:
            payload = await self._checked(body, headers)
            outcome = await self._apply(payload)
        except Refused as refused:
            self.counts[refused.code] += 1
            logger.warning("webhook refused (%s) from %s: %s", refused.code, peer, refused.message)
            return refused.status, ErrorBody(
                error=refused.code, message=refused.message
            ).model_dump()
        self.counts[outcome] += 1
        logger.info("webhook for %s: %s", payload["request_id"], outcome)
        return 200, {"status": outcome, "request_id": payload["request_id"]}

    # ---- checking ----

    async def _checked(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        check = await check_webhook_async(
            body, headers, self.fetcher(), leeway=self.options.webhook_leeway, replay=self.replays
        )
        if check.verdict is not Verdict.ACCEPTED or check.request_id is None:
            status, code = REFUSALS[check.verdict]
            raise Refused(status, code, check.reason)
        return _payload(body, check.request_id)

    # ---- acting ----

    async def _apply(self, payload: dict[str, Any]) -> str:
        """Deliver the output (or have the job followed now); what was done, in a word."""
        request_id: str = payload["request_id"]
        engine = await self.service.engine()
        data = payload.get("payload")
        output = data if payload.get("status") == "OK" and isinstance(data, dict) else None

        def act() -> bool:
            if output is None:
                return engine.follow_now(request_id)
            return engine.deliver(request_id, FalResponse(data=output, request_id=request_id))

        if act():
            return "delivered" if output is not None else "following"
        store = await self.service.store()
        job = await store.get_job(request_id)
        if job is None:
            await _submits_settled(engine)
            if act():
                return "delivered" if output is not None else "following"
            job = await store.get_job(request_id)
        if job is None or job.request_id != request_id:
            raise Refused(404, "unknown_request", f"no job with request {request_id} here (yet)")
        if job.finished:
            return "already_" + job.status
        handle = await self.service.handle(job.id)  # running here, or reattached now
        await handle.wait_while(("pending", "preparing", "submitting"), WAIT_FOR_SUBMIT)
        await asyncio.sleep(0)  # a reattached job's task takes its request id
        if act():
            return "delivered" if output is not None else "following"
        return "following"


async def _submits_settled(engine: JobEngine) -> None:
    """Wait (a little) for submits on the wire here: the delivery may have beaten an answer."""
    waiting = [h.wait_while(("submitting",), WAIT_FOR_SUBMIT) for h in engine.running()]
    if waiting:
        await asyncio.gather(*waiting)


def _payload(body: bytes, request_id: str) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise Refused(400, "bad_body", "the body is not JSON") from None
    if not isinstance(payload, dict) or payload.get("request_id") != request_id:
        raise Refused(400, "bad_body", "the body's request_id does not match the signed one")
    return payload


router = APIRouter(tags=["webhooks"])
DOCUMENTED = (
    (400, "Malformed delivery"),
    (401, "Bad signature or outside the time window"),
    (404, "Unknown request (Fal retries), or webhooks off (no FALKIT_PUBLIC_URL)"),
    (409, "Replayed delivery"),
    (413, "Body too large"),
    (503, "Fal's keys unavailable (Fal retries)"),
)


class WebhookOut(BaseModel):
    status: str
    request_id: str


@router.post(
    "/webhooks/fal",
    response_model=WebhookOut,
    responses={code: {"model": ErrorBody, "description": text} for code, text in DOCUMENTED},
)
async def fal_webhook(
    request: Request, state: Annotated[WebState, Depends(web_state)]
) -> JSONResponse:
    """Where Fal delivers job outcomes (signed; see the module docstring)."""
    receiver = state.webhooks
    if not receiver.enabled:
        return error_response(404, "webhooks_off", "this server has no FALKIT_PUBLIC_URL")
    body = await request.body()
    peer = request.client.host if request.client else "?"
    status, answer = await receiver.receive(body, request.headers, peer)
    return JSONResponse(answer, status_code=status)
