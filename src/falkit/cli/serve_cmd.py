"""`falkit serve`: the web page and the HTTP API over one FalService, under uvicorn.

FastAPI and the web package load only when the command runs, so `falkit --help` stays fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from falkit.cli.common import EMULATOR_OPTION, run, stderr

if TYPE_CHECKING:
    import socket
    from collections.abc import Awaitable

    from falkit.config import Settings
    from falkit.web.options import WebOptions


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free one)."),
    emulator: bool = EMULATOR_OPTION,
    max_spend_usd: float | None = typer.Option(
        None,
        "--max-spend-usd",
        min=0,
        envvar="FALKIT_MAX_SPEND_USD",
        help="Refuse jobs (402) whose estimate would take this server's spend past this.",
    ),
    public_url: str | None = typer.Option(
        None,
        "--public-url",
        help="Where Fal can reach this server (default FALKIT_PUBLIC_URL): every submit then "
        "carries {public_url}/webhooks/fal and jobs finish from Fal's webhooks.",
    ),
    webhook_grace: float = typer.Option(
        120.0,
        "--webhook-grace",
        min=0,
        help="Seconds a job waits for its webhook before it is followed by status calls.",
    ),
    max_upload_mb: int = typer.Option(
        200, "--max-upload-mb", min=1, help="Largest upload (LoRA training set) in MiB."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
    no_worker: bool = typer.Option(
        False,
        "--no-worker",
        help="API only: jobs run on `falkit worker` processes sharing FALKIT_DATABASE_URL "
        "(PostgreSQL; see docs/deploy.md).",
    ),
) -> None:
    """Serve falkit's web page and HTTP API: generate with live progress, gallery, LoRAs, batches.

    Loopback needs no token; any other --host needs FALKIT_API_TOKEN (sent as a bearer token).
    See docs/web.md.
    """
    from falkit.config import load_settings
    from falkit.web.options import MB, WebOptions

    def main() -> Awaitable[None]:
        settings = load_settings()
        token = settings.api_token.get_secret_value() if settings.api_token else None
        options = WebOptions(
            host=host, api_token=token, public_url=public_url or settings.public_url,
            jwks_url=settings.jwks_url, max_upload_bytes=max_upload_mb * MB,
        )  # fmt: skip
        return _serve(options, port, emulator, max_spend_usd, webhook_grace, access_log, no_worker)

    run(main)


async def _serve(
    options: WebOptions,
    port: int,
    emulator: bool,
    max_spend_usd: float | None,
    webhook_grace: float,
    access_log: bool,
    no_worker: bool = False,
) -> None:
    import contextlib
    import dataclasses
    import os

    from falkit.cli.common import settings_for

    with contextlib.ExitStack() as stack:
        if emulator:
            from falkit.emulator import EmulatorConfig, run_emulator

            latency = float(os.environ.get("FALKIT_EMULATOR_LATENCY", "1.5"))
            emu = stack.enter_context(run_emulator(EmulatorConfig(latency=latency)))
            settings = settings_for(emu.base_url)
            if options.jwks_url is None:
                options = dataclasses.replace(
                    options, jwks_url=f"{emu.rest_url}/.well-known/jwks.json"
                )
            stderr().print("[yellow]Offline emulator:[/] images are placeholders.")
        else:
            settings = settings_for(None)
        await _run_server(
            settings, options, port, max_spend_usd, webhook_grace, access_log, no_worker
        )


async def _run_server(
    settings: Settings,
    options: WebOptions,
    port: int,
    max_spend_usd: float | None,
    webhook_grace: float,
    access_log: bool,
    no_worker: bool = False,
) -> None:
    import uvicorn

    from falkit.distributed.serve import replica
    from falkit.distributed.worker import WorkerOptions
    from falkit.service import FalService
    from falkit.service.engine import EngineOptions
    from falkit.web import pages
    from falkit.web.app import create_app

    engine = EngineOptions(webhook_url=options.webhook_url, webhook_grace=webhook_grace)
    async with FalService(settings, spend_cap=max_spend_usd, engine_options=engine) as service:
        if not service.enabled:
            stderr().print("[yellow]No FAL_API_KEY:[/] jobs will be refused (503) until it is set.")
        sock = _bind(options.host, port)
        url = f"http://{_url_host(options.host)}:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(service, options, routers=pages.routers()), ws="none",
            access_log=access_log,
            log_level="info" if access_log else "warning", timeout_graceful_shutdown=5,
            timeout_keep_alive=30, backlog=4096,
        )  # fmt: skip
        if options.webhook_url:
            stderr().print(f"Fal webhooks: {options.webhook_url}")
        stderr().print(f"falkit at {url}/ (API: {url}/api/v1, OpenAPI: {url}/openapi.json)")
        worker = None if no_worker else WorkerOptions(webhook_grace=webhook_grace)
        async with replica(service, worker=worker, required=no_worker):
            sys.stdout.write(f"serving {url}\n")
            sys.stdout.flush()
            await uvicorn.Server(config).serve(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
