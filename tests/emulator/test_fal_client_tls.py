"""An unchanged fal-client app against `falkit emulator --tls`, configured only by its exports.

`python -m falkit emulator --tls --env --port 0` runs as one process; fal_client_app.py, which
patches nothing, runs as another with nothing but PATH, HOME and the four variables the
emulator printed for fal-client: subscribe with logs, submit/status/result, cancel, run.
"""

from __future__ import annotations

import json
import os
import random
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from falkit.config import EMULATOR_KEY

from .children import DEADLINE, EmulatorChild, clean_env, default_sigint

APP = Path(__file__).with_name("fal_client_app.py")
FALKIT_NAMES = [
    "FALKIT_QUEUE_URL",
    "FALKIT_RUN_URL",
    "FALKIT_REST_URL",
    "FALKIT_CDN_URL",
    "FALKIT_API_URL",
    "FAL_API_KEY",
]
FAL_CLIENT_NAMES = ["FAL_KEY", "FAL_RUN_HOST", "FAL_QUEUE_RUN_HOST", "SSL_CERT_FILE"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("falkit-home")


@pytest.fixture(scope="module")
def emulator(home: Path) -> Iterator[tuple[EmulatorChild, dict[str, str]]]:
    child = EmulatorChild(
        "--tls", "--env", "--port", "0", "--latency", "0.3", "--concurrency", "1",
        env=clean_env(FALKIT_HOME=str(home)), stderr_path=home / "emulator-stderr.txt",
    )  # fmt: skip
    try:
        exports = child.exports(len(FALKIT_NAMES) + len(FAL_CLIENT_NAMES))
        yield child, exports
    finally:
        child.force()


@pytest.fixture(scope="module")
def seen(emulator: tuple[EmulatorChild, dict[str, str]]) -> dict[str, Any]:
    """What the unchanged app saw, run with only PATH, HOME and the fal-client exports."""
    _, exports = emulator
    env = {name: exports[name] for name in FAL_CLIENT_NAMES}
    env.update(PATH=os.environ.get("PATH", ""), HOME=os.environ.get("HOME", ""))
    done = subprocess.run(
        [sys.executable, str(APP)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # then killed
        preexec_fn=default_sigint,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def part(seen: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = seen[name]
    assert "crashed" not in found, found.get("crashed")
    return found


def test_exports_one_per_line_falkit_then_fal_client(
    emulator: tuple[EmulatorChild, dict[str, str]], home: Path
) -> None:
    child, exports = emulator
    assert list(exports) == FALKIT_NAMES + FAL_CLIENT_NAMES
    assert exports["FAL_KEY"] == exports["FAL_API_KEY"] == EMULATOR_KEY
    base = exports["FALKIT_QUEUE_URL"].removesuffix("/queue")
    assert base.startswith("https://127.0.0.1:")
    hosts = {base.removeprefix("https://"), exports["FAL_RUN_HOST"], exports["FAL_QUEUE_RUN_HOST"]}
    assert len(hosts) == 3
    assert all(host.startswith("127.0.0.1:") and not host.endswith(":0") for host in hosts)
    tls = home / "emulator" / "tls"
    assert Path(exports["SSL_CERT_FILE"]) == tls / "ca-bundle.pem"
    for key in ("ca-key.pem", "server-key.pem"):
        assert stat.S_IMODE((tls / key).stat().st_mode) == 0o600
    err = child.stderr()
    assert "fal_client.client.REST_URL" in err  # the banner says how to point uploads here


def test_subscribe_with_logs_and_queue_updates(seen: dict[str, Any]) -> None:
    found = part(seen, "subscribe")
    kinds = [update["type"] for update in found["updates"]]
    assert kinds[0] == "Queued"
    assert found["updates"][0]["position"] == 0
    assert "InProgress" in kinds
    assert kinds[-1] == "Completed"
    logs = [line for u in found["updates"] if u["type"] == "InProgress" for line in u["logs"]]
    assert any(line.startswith("step ") for line in logs)
    assert "step 5/5" in found["updates"][-1]["logs"]
    assert found["updates"][-1]["metrics"]["inference_time"] > 0
    assert len(found["enqueued"]) == 1
    assert found["result"]["prompt"] == "a lighthouse"
    assert found["image"] == {"status": 200, "size": [512, 512], "format": "JPEG"}


def test_submit_status_result(
    seen: dict[str, Any], emulator: tuple[EmulatorChild, dict[str, str]]
) -> None:
    found = part(seen, "submit_status_result")
    queue_host = emulator[1]["FAL_QUEUE_RUN_HOST"]
    assert found["status_url"] == (
        f"https://{queue_host}/fal-ai/flux/requests/{found['request_id']}/status"
    )
    assert found["first_status"]["type"] in ("Queued", "InProgress")
    assert found["final_status"]["type"] == "Completed"
    assert found["final_status"]["logs"]
    assert found["result"]["seed"] == 5
    assert found["result_by_id"] == found["result"]


def test_cancel(seen: dict[str, Any]) -> None:
    found = part(seen, "cancel")
    assert found["after"]["type"] == "Completed"
    assert found["after"]["error"] == "Request was cancelled"
    assert found["cancel_finished_code"] == 400


def test_run(seen: dict[str, Any]) -> None:
    found = part(seen, "run")
    image = found["result"]["images"][0]
    assert (image["width"], image["height"], image["content_type"]) == (256, 192, "image/png")
    assert found["image"] == {"status": 200, "size": [256, 192], "format": "PNG"}


def test_each_job_submitted_once_and_stops_cleanly(
    seen: dict[str, Any], emulator: tuple[EmulatorChild, dict[str, str]]
) -> None:
    child, exports = emulator
    base = exports["FALKIT_QUEUE_URL"].removesuffix("/queue")
    trust = ssl.create_default_context(cafile=exports["SSL_CERT_FILE"])
    stats = httpx.get(f"{base}/_emulator/stats", verify=trust, timeout=DEADLINE).json()
    # subscribe + its blocker, submit, cancel's blocker + the cancelled job
    assert stats["submits_by_endpoint"] == {"fal-ai/flux/dev": 3, "fal-ai/flux/schnell": 2}
    assert stats["requests"]["run"] == 1
    assert child.stop() == 0
    assert len(child.drain()) == 10  # nothing but the exports on stdout
    assert "Traceback" not in child.stderr()
    assert "GET /" not in child.stderr()  # no access log unless asked


def ports_with_the_last_taken() -> tuple[int, socket.socket]:
    """A port P with P and P + 1 free and P + 2 held by a listening socket (returned).

    Taken below Linux's ephemeral range, so no client connection's local port collides.
    """
    for _ in range(100):
        port = random.randrange(20_000, 32_000)
        busy = socket.socket()
        try:
            for free in (port, port + 1):
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(("127.0.0.1", free))
            busy.bind(("127.0.0.1", port + 2))
            busy.listen()
        except OSError:
            busy.close()
            continue
        return port, busy
    raise AssertionError("no three consecutive ports to test with")


def test_a_busy_role_port_is_named_with_the_fix(tmp_path: Path) -> None:
    port, busy = ports_with_the_last_taken()
    with busy:
        child = EmulatorChild(
            "--tls", "--env", "--port", str(port),
            env=clean_env(FALKIT_HOME=str(tmp_path)), stderr_path=tmp_path / "stderr.txt",
        )  # fmt: skip
        try:
            code = child.process.wait(timeout=DEADLINE)
        finally:
            child.force()
    err = child.stderr()
    assert code == 1, err
    assert child.drain() == []
    assert "Traceback" not in err
    assert f"cannot listen on 127.0.0.1:{port + 2}" in err
    assert "pick another --port" in err
