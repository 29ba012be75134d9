"""MCP test fixtures: the shared emulator and service, and a client connected in-process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from falkit.mcp.app import McpApp, ServerOptions
from falkit.mcp.server import create_server
from falkit.service import FalService
from tests.integration.conftest import emu, service

__all__ = ["emu", "service"]

Connect = Callable[..., contextlib.AbstractAsyncContextManager[Client]]


@pytest.fixture
def connect(service: FalService) -> Connect:
    """connect(**options) -> an MCP client session on a fresh server over ``service``."""

    @contextlib.asynccontextmanager
    async def open_client(
        svc: FalService | None = None, mode: str = "auto", **options: Any
    ) -> AsyncIterator[Client]:
        options.setdefault("wait_seconds", 20.0)
        async with (
            McpApp(svc or service, ServerOptions(**options)) as app,
            Client(create_server(app), mode=mode) as client,  # type: ignore[arg-type]
        ):
            yield client

    return open_client


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    from tests.lora.helpers import make_folder

    return make_folder(tmp_path / "photos", 5)
