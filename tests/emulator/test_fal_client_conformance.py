"""The official fal-client 1.0.3, unpatched but for REST_URL/CDN_URL, works against the emulator.

It hard-codes https and reads its hosts at import, so it runs in a subprocess
(fal_client_scenarios.py) against a TLS emulator whose queue and run roles each own a listener.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from falkit.emulator import EmulatorConfig, EmulatorServer, run_emulator
from tests.processes import run

SCRIPT = Path(__file__).with_name("fal_client_scenarios.py")


@pytest.fixture(scope="module")
def tls_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorServer, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, pem = folder / "ca.pem", folder / "server.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    config = EmulatorConfig(latency=0.3, concurrency=1)
    with run_emulator(config, ssl=(pem, pem), split_roles=True) as emu:
        yield emu, ca_file


@pytest.fixture(scope="module")
def outcome(tls_emulator: tuple[EmulatorServer, Path]) -> dict[str, Any]:
    emu, ca_file = tls_emulator
    assert emu.queue_host
    assert emu.run_host
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALKIT_"))}
    env.update(
        FAL_KEY="emulator-key:emulator-secret",
        FAL_RUN_HOST=emu.run_host,
        FAL_QUEUE_RUN_HOST=emu.queue_host,
        SSL_CERT_FILE=str(ca_file),
        EMU_REST_URL=emu.rest_url,
        EMU_CDN_URL=emu.cdn_url,
    )
    done = run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    result["_stats"] = emu.stats
    return result


def _ok(outcome: dict[str, Any], name: str) -> dict[str, Any]:
    part: dict[str, Any] = outcome[name]
    assert "crashed" not in part, part.get("crashed")
    return part


def test_subscribe_sees_queued_in_progress_with_logs_and_completed(outcome: dict[str, Any]) -> None:
    part = _ok(outcome, "subscribe")
    kinds = [u["type"] for u in part["updates"]]
    assert kinds[0] == "Queued"
    assert part["updates"][0]["position"] == 0
    assert "InProgress" in kinds
    assert kinds[-1] == "Completed"
    logs = [line for u in part["updates"] if u["type"] == "InProgress" for line in u["logs"]]
    assert any(line.startswith("step ") for line in logs)
    assert "step 5/5" in part["updates"][-1]["logs"]
    assert part["updates"][-1]["metrics"]["inference_time"] > 0
    assert len(part["enqueued"]) == 1
    assert part["image"] == {"status": 200, "size": [512, 512], "format": "JPEG"}
    assert part["result"]["prompt"] == "a lighthouse"


def test_submit_status_result_and_reattach(outcome: dict[str, Any]) -> None:
    part = _ok(outcome, "submit_status_result")
    assert part["status_url"].endswith(f"/fal-ai/flux/requests/{part['request_id']}/status")
    assert part["first_status"]["type"] in ("Queued", "InProgress")
    assert part["final_status"]["type"] == "Completed"
    assert part["final_status"]["logs"]
    assert part["result"]["seed"] == 5
    assert part["result_by_id"] == part["result"] == part["reattached"]


def test_cancel(outcome: dict[str, Any]) -> None:
    part = _ok(outcome, "cancel")
    assert part["after"]["type"] == "Completed"
    assert part["after"]["error"] == "Request was cancelled"
    assert part["cancel_finished_code"] == 400


def test_run_returns_output_with_real_image(outcome: dict[str, Any]) -> None:
    part = _ok(outcome, "run")
    image = part["result"]["images"][0]
    assert (image["width"], image["height"], image["content_type"]) == (256, 192, "image/png")
    assert part["image"] == {"status": 200, "size": [256, 192], "format": "PNG"}


def test_invalid_input_surfaces_as_422_with_detail_list(outcome: dict[str, Any]) -> None:
    part = _ok(outcome, "invalid_input")
    assert part["status_code"] == 422
    assert part["message"][0]["loc"] == ["body", "num_inference_steps"]


def test_uploads_cdn_and_legacy(outcome: dict[str, Any]) -> None:
    part = _ok(outcome, "upload")
    assert part["cdn_same"]
    assert part["legacy_same"]
    assert part["cdn_url"].startswith("https://127.0.0.1:")


def test_each_job_submitted_once(outcome: dict[str, Any]) -> None:
    stats = outcome["_stats"]
    assert stats.submits == sum(stats.submits_by_endpoint.values())
    assert stats.submits_by_endpoint["fal-ai/flux/dev"] == 3  # subscribe, submit, cancelled one
    assert stats.requests["upload"] == 1
    assert stats.requests["initiate"] == 1
    assert stats.requests["run"] == 1
