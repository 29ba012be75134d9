"""The API key never comes back out of falkit, even when Fal's side echoes it.

An ASGI middleware in front of the emulator plays a careless app: it writes the caller's key
into a log line, into the output (the echoed prompt) and into a job's error. The key, and its
secret part alone, must then appear nowhere: CLI output (with --debug), events, MCP answers,
the library's rows, or any file under FALKIT_HOME (images and their metadata included).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from pydantic import SecretStr

from falkit.config import load_settings
from falkit.emulator import EmulatorConfig, EmulatorServer, Fault
from falkit.errors import JobFailedError
from falkit.mcp.app import McpApp, ServerOptions
from falkit.mcp.server import create_server
from falkit.service import FalService
from tests.hardening.reconcile_support import cli_env, falkit_cli

KEY = "kid-4f3a9c2e:SECRET-9x8y7z6w5v4u3t2s"
SECRETS = (KEY, "SECRET-9x8y7z6w5v4u3t2s")
MARKER = "ECHO-THE-KEY"


class KeyEcho:
    """ASGI middleware: every authenticated answer gets the caller's key written into it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode()
        if scope["type"] != "http" or not auth.startswith("Key "):
            await self.app(scope, receive, send)
            return
        key = auth.removeprefix("Key ")
        swaps = [
            (MARKER, key),  # the output's prompt
            ("Model loaded; generating", f"Model loaded for {key}; generating"),  # a log line
            ("Runner disconnected", f"Runner disconnected (caller {key})"),  # a job's error
        ]

        async def echo(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message["headers"] if k.lower() != b"content-length"]
                message = {**message, "headers": kept}
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                for old, new in swaps:
                    body = body.replace(old.encode(), new.encode())
                message = {**message, "body": body}
            await send(message)

        await self.app(scope, receive, echo)


@pytest.fixture
def emu() -> Iterator[EmulatorServer]:
    server = EmulatorServer(EmulatorConfig(latency=0.2, concurrency=4))
    server.app = KeyEcho(server.app)  # type: ignore[assignment]
    with server:
        yield server


def _service(emu: EmulatorServer) -> FalService:
    return FalService(load_settings().with_urls(emu.base_url, api_key=SecretStr(KEY)))


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def _library_text(home: Path) -> str:
    """Every row of every table, and every file's bytes, as one text."""
    parts: list[str] = []
    db = home / "falkit.db"
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            parts += [repr(row) for row in conn.execute(f"SELECT * FROM {table}")]
    for path in home.rglob("*"):
        if path.is_file() and path != db:
            parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def test_the_echo_really_happens(emu: EmulatorServer) -> None:
    """The test's premise: without scrubbing, the key would be in the answers."""
    import httpx

    auth = {"Authorization": f"Key {KEY}"}
    queued = httpx.post(
        f"{emu.base_url}/queue/fal-ai/flux/schnell", json={"prompt": MARKER}, headers=auth
    ).json()
    with httpx.Client(headers=auth, timeout=30) as http:
        with http.stream("GET", queued["status_url"] + "/stream", params={"logs": "1"}) as sse:
            streamed = "".join(sse.iter_lines())
        result = http.get(queued["response_url"]).text
        status = http.get(queued["status_url"], params={"logs": "1"}).text
    assert KEY in result
    assert KEY in status
    assert KEY in streamed


def test_the_cli_and_the_library_never_hold_the_key(emu: EmulatorServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(emu, home)
    env["FAL_API_KEY"] = KEY
    done = falkit_cli("--debug", "generate", f"draw {MARKER}", "--seed", "1", "--json", env=env)
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["job_id"]
    plain = falkit_cli("--debug", "generate", f"draw {MARKER} again", "--seed", "2", env=env)
    assert plain.returncode == 0, plain.stderr
    emu.faults.add(Fault(route="submit", kind="job_error"))
    failed = falkit_cli("--debug", "generate", f"fail {MARKER}", "--seed", "3", env=env)
    assert failed.returncode != 0
    assert "Runner disconnected (caller key_…" in failed.stderr
    shown = falkit_cli("jobs", "show", job_id, "--json", env=env)
    listed = falkit_cli("jobs", "list", "--json", env=env)
    outputs = [done, plain, failed, shown, listed]
    for out in outputs:
        assert not _leaks(out.stdout + out.stderr), out
    assert not _leaks(_library_text(home))
    rows = json.loads(listed.stdout)
    assert sorted(row["status"] for row in rows) == ["completed", "completed", "failed"]


async def test_events_and_mcp_answers_never_hold_the_key(emu: EmulatorServer) -> None:
    async with _service(emu) as service:
        handle = await service.start_image(service.request(f"draw {MARKER}", seed=4))
        events = [
            json.dumps(event.to_json(), default=str, ensure_ascii=False)
            async for event in handle.events()
        ]
        result = await handle.result()
        emu.faults.add(Fault(route="submit", kind="job_error"))
        failing = await service.start_image(service.request(f"fail {MARKER}", seed=5))
        events += [
            json.dumps(event.to_json(), default=str, ensure_ascii=False)
            async for event in failing.events()
        ]
        with pytest.raises(JobFailedError) as caught:
            await failing.result()
        async with (
            McpApp(service, ServerOptions(wait_seconds=20.0)) as app,
            Client(create_server(app), mode="auto") as client,  # type: ignore[arg-type]
        ):
            answers = [
                await client.call_tool("generate_image", {"prompt": f"mcp {MARKER}"}),
                await client.call_tool("get_job", {"job_id": result.job_id}),
                await client.call_tool("get_job", {"job_id": failing.job_id}),
                await client.call_tool("list_jobs", {}),
            ]
        home = service.settings.home
    texts = [a.model_dump_json() for a in answers]
    assert any("Model loaded for key_…" in e for e in events), "the echoed log line arrived"
    assert "Runner disconnected (caller key_…" in str(caught.value)
    for text in [*events, *texts, str(caught.value), repr(result)]:
        assert not _leaks(text), text[:500]
    assert not _leaks(_library_text(home))
