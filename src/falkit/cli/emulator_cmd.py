"""`falkit emulator`: serve the offline Fal emulator, for people and for other processes.

With ``--env`` the only thing on stdout is one ``export NAME=value`` line per variable, printed
and flushed once the port accepts connections, so ``eval "$(falkit emulator --port 0 --env &)"``
style harnesses (and :mod:`bench.harness`) can read the URLs. Everything for humans goes to
stderr, unwrapped.
"""

from __future__ import annotations

import sys

import typer

ENV_NAMES = (
    "FALKIT_QUEUE_URL",
    "FALKIT_RUN_URL",
    "FALKIT_REST_URL",
    "FALKIT_CDN_URL",
    "FALKIT_API_URL",
)


def env_lines(base_url: str, api_key: str) -> list[str]:
    """``export NAME=value`` lines pointing falkit at an emulator serving ``base_url``."""
    roles = ("queue", "run", "rest", "cdn", "api")
    lines = [
        f"export {name}={base_url}/{role}" for name, role in zip(ENV_NAMES, roles, strict=True)
    ]
    return [*lines, f"export FAL_API_KEY={api_key}"]


def emulator(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8765, "--port", help="Port to listen on; 0 picks a free one."),
    latency: float = typer.Option(1.0, "--latency", help="Seconds each image job runs."),
    concurrency: int = typer.Option(
        2, "--concurrency", help="Jobs running at once (the account limit)."
    ),
    training_seconds: float = typer.Option(
        3.0, "--training-seconds", help="Seconds each LoRA training job runs."
    ),
    plain_images: bool = typer.Option(
        False,
        "--plain-images",
        help="One cached picture per size and format, prompt and seed in its metadata "
        "(near-free downloads for load tests).",
    ),
    env: bool = typer.Option(
        False, "--env", help="Once listening, print `export NAME=value` lines on stdout."
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request to stderr."),
) -> None:
    """Serve a Fal-compatible emulator; point falkit at it with FALKIT_*_URL (printed)."""
    from falkit.config import EMULATOR_KEY
    from falkit.emulator import EmulatorConfig
    from falkit.emulator.server import serve

    try:
        config = EmulatorConfig(
            latency=latency,
            concurrency=concurrency,
            training_seconds=training_seconds,
            plain_images=plain_images,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    def ready(base_url: str) -> None:
        lines = env_lines(base_url, EMULATOR_KEY)
        sys.stderr.write(
            f"Fal emulator on {base_url} (placeholder images; latency {latency:g} s, "
            f"concurrency {concurrency}). Use it with:\n"
            + "".join(f"  {line}\n" for line in lines)
            + f"Counters: GET {base_url}/_emulator/stats. Stop with Ctrl-C.\n"
        )
        sys.stderr.flush()
        if env:
            try:
                sys.stdout.write("".join(f"{line}\n" for line in lines))
                sys.stdout.flush()
            except OSError:  # nobody reads stdout any more (e.g. `| head -1`): keep serving
                pass

    try:
        serve(host=host, port=port, config=config, on_ready=ready, access_log=access_log)
    except OSError as exc:
        sys.stderr.write(f"Error: cannot listen on {host}:{port}: {exc.strerror or exc}.\n")
        sys.stderr.write("Fix: pick another --port (0 picks a free one).\n")
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command("emulator")(emulator)
