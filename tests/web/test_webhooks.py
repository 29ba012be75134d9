"""Fal webhooks: 2 requests to Fal per one-image job; tampered, replayed and late refused."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from falkit.emulator import EmulatorConfig, Fault, run_emulator
from falkit.emulator.signing import signed_message
from falkit.service.engine import EngineOptions
from falkit.web.options import WebOptions
from tests.web.helpers import LiveServer, Served, job_done, served, settings_for


def hooked(emu: Any, grace: float = 60.0) -> Any:
    """Options for a server whose submits carry its own webhook URL."""

    def options(url: str) -> WebOptions:
        return WebOptions(public_url=url, jwks_url=f"{emu.rest_url}/.well-known/jwks.json")

    def engine(options: WebOptions) -> EngineOptions:
        return EngineOptions(webhook_url=options.webhook_url, webhook_grace=grace)

    return options, engine


def wait_ended(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not end")


def test_two_requests_to_fal_per_one_image_job() -> None:
    with run_emulator(EmulatorConfig(latency=0.2, concurrency=4)) as emu:
        options, engine = hooked(emu)
        settings = settings_for(emu.base_url)
        with LiveServer(settings, options, engine_options=engine) as server:
            client = httpx.Client(base_url=server.url, timeout=30)
            client.get("/healthz")  # started: the JWKS was fetched once at start
            emu.stats.reset()
            ids = [
                client.post("/api/v1/images", json={"prompt": f"hook {i}", "seed": i}).json()[
                    "job_id"
                ]
                for i in range(3)
            ]
            jobs = [wait_ended(client, job_id) for job_id in ids]
            assert [job["status"] for job in jobs] == ["completed"] * 3
            assert all(len(job["images"]) == 1 for job in jobs)
            requests = dict(emu.stats.requests)
            assert requests == {"submit": 3, "file": 3}, requests
            assert sum(requests.values()) / len(ids) == 2
            assert emu.stats.webhooks_delivered == 3
            client.close()


def test_error_delivery_has_the_job_followed_at_once() -> None:
    with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        options, engine = hooked(emu, grace=600.0)
        with LiveServer(settings_for(emu.base_url), options, engine_options=engine) as server:
            client = httpx.Client(base_url=server.url, timeout=30)
            emu.faults.add(Fault(route="submit", kind="job_error"))
            job_id = client.post("/api/v1/images", json={"prompt": "doomed"}).json()["job_id"]
            job = wait_ended(client, job_id)  # long before the 600 s grace
            assert job["status"] == "failed"
            following = {"status", "stream", "result"} & set(emu.stats.requests)
            assert following  # Fal's own account of the failure, asked for at once
            client.close()


async def test_without_a_delivery_the_job_is_followed_after_the_grace(emu: Any) -> None:
    options = WebOptions(public_url="http://127.0.0.1:9")  # Fal cannot reach this
    engine = EngineOptions(webhook_url=options.webhook_url, webhook_grace=0.3)
    emu.config.webhook_retry_delays = ()
    async with served(settings_for(emu.base_url), options, engine_options=engine) as web:
        started = (await web.client.post("/api/v1/images", json={"prompt": "x"})).json()
        job = await job_done(web.client, started["job_id"])
        assert job["status"] == "completed"
        assert emu.stats.webhooks_failed == 1


# ---- refusals ----


@pytest.fixture
async def receiver(emu: Any) -> Any:
    options = WebOptions(
        public_url="https://falkit.example", jwks_url=f"{emu.rest_url}/.well-known/jwks.json"
    )
    async with served(settings_for(emu.base_url), options) as web:
        yield web


def delivery(
    emu: Any, request_id: str = "req-1", *, stamp: int | None = None, key: Any = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"request_id": request_id, "status": "OK", "payload": {"images": []}})
    data = body.encode()
    timestamp = str(int(time.time()) if stamp is None else stamp)
    signer = key or emu.engine.signer.key
    signature = signer.sign(signed_message(request_id, "user-1", timestamp, data)).hex()
    headers = {
        "content-type": "application/json",
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": "user-1",
        "X-Fal-Webhook-Timestamp": timestamp,
        "X-Fal-Webhook-Signature": signature,
    }
    return data, headers


async def post(web: Served, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await web.client.post("/webhooks/fal", content=body, headers=headers)


async def test_refused_deliveries_are_4xx_and_logged(
    receiver: Served, emu: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="falkit.web.webhooks")
    body, headers = delivery(emu)
    tampered = await post(receiver, body.replace(b'"OK"', b'"ERROR"'), headers)
    assert tampered.status_code == 401
    assert tampered.json()["error"] == "bad_signature"
    late_body, late_headers = delivery(emu, stamp=int(time.time()) - 3600)
    late = await post(receiver, late_body, late_headers)
    assert late.status_code == 401
    assert late.json()["error"] == "late"
    future_body, future_headers = delivery(emu, stamp=int(time.time()) + 3600)
    assert (await post(receiver, future_body, future_headers)).status_code == 401
    forged_body, forged_headers = delivery(emu, key=Ed25519PrivateKey.generate())
    assert (await post(receiver, forged_body, forged_headers)).status_code == 401
    unsigned = {k: v for k, v in headers.items() if k != "X-Fal-Webhook-Signature"}
    missing = await post(receiver, body, unsigned)
    assert missing.status_code == 400
    assert missing.json()["error"] == "missing_headers"
    swapped = await post(receiver, body, {**headers, "X-Fal-Webhook-Request-Id": "req-2"})
    assert swapped.status_code == 401  # the request id is part of what is signed

    first = await post(receiver, body, headers)  # genuine, but no such job here: Fal retries
    assert first.status_code == 404
    replayed = await post(receiver, body, headers)
    assert replayed.status_code == 409
    assert replayed.json()["error"] == "replayed"

    reasons = receiver.client._transport.app.state.web.webhooks.counts  # type: ignore[attr-defined]
    assert reasons["bad_signature"] == 3
    assert reasons["late"] == 2
    assert reasons["replayed"] == 1
    logged = [r.getMessage() for r in caplog.records if "webhook refused" in r.getMessage()]
    assert any("(late)" in line for line in logged)
    assert any("(replayed)" in line for line in logged)
    assert any("(bad_signature)" in line for line in logged)
    assert emu.stats.submits == 0


async def test_webhooks_are_off_without_a_public_url(web: Served, emu: Any) -> None:
    body, headers = delivery(emu)
    answer = await post(web, body, headers)
    assert answer.status_code == 404
    assert answer.json()["error"] == "webhooks_off"


async def test_delivery_for_a_finished_job_changes_nothing(receiver: Served, emu: Any) -> None:
    started = (await receiver.client.post("/api/v1/images", json={"prompt": "fox"})).json()
    job = await job_done(receiver.client, started["job_id"])
    body, headers = delivery(emu, job["request_id"])
    answer = await post(receiver, body, headers)
    assert answer.status_code == 200
    assert answer.json()["status"] == "already_completed"
