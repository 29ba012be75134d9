"""`falkit emulator`: serve the offline Fal emulator."""

from __future__ import annotations

import typer


def emulator(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
    latency: float = typer.Option(1.0, "--latency", help="Seconds each job runs."),
    concurrency: int = typer.Option(2, "--concurrency", help="Jobs running at once."),
) -> None:
    """Serve a Fal-compatible emulator; point falkit at it with FALKIT_*_URL (printed)."""
    from falkit.cli.common import stderr
    from falkit.config import EMULATOR_KEY
    from falkit.emulator import EmulatorConfig, serve

    base = f"http://{host}:{port}"
    stderr().print(
        f"Fal emulator on {base} (placeholder images). Use it with:\n"
        f"  export FALKIT_QUEUE_URL={base}/queue FALKIT_RUN_URL={base}/run "
        f"FALKIT_REST_URL={base}/rest FALKIT_CDN_URL={base}/cdn\n"
        f"  export FAL_API_KEY={EMULATOR_KEY}"
    )
    serve(host=host, port=port, config=EmulatorConfig(latency=latency, concurrency=concurrency))


def register(app: typer.Typer) -> None:
    app.command("emulator")(emulator)
