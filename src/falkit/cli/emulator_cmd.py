"""`falkit emulator`: serve the offline Fal emulator, for people and for other processes.

With ``--env`` the only thing on stdout is one ``export NAME=value`` line per variable (values
shell-quoted when needed), printed and flushed once every port accepts connections, so a script
can start it in the background and ``eval`` or source the lines (and :mod:`bench.harness` reads
them). Everything for humans goes to stderr, unwrapped.

``--tls`` serves https with a certificate from a local CA cached under FALKIT_HOME, and adds the
queue and run roles at the root of their own ports, so an unchanged fal-client app works with
the extra lines it prints: FAL_KEY, FAL_RUN_HOST, FAL_QUEUE_RUN_HOST and SSL_CERT_FILE.
``--data DIR`` keeps jobs and files across restarts.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from falkit.emulator.server import Listening

ENV_NAMES = (
    "FALKIT_QUEUE_URL",
    "FALKIT_RUN_URL",
    "FALKIT_REST_URL",
    "FALKIT_CDN_URL",
    "FALKIT_API_URL",
)
FAL_CLIENT_NAMES = ("FAL_KEY", "FAL_RUN_HOST", "FAL_QUEUE_RUN_HOST", "SSL_CERT_FILE")


def export(name: str, value: str) -> str:
    """One ``export NAME=value`` line, the value quoted for a POSIX shell if it needs it."""
    return f"export {name}={shlex.quote(value)}"


def env_lines(base_url: str, api_key: str) -> list[str]:
    """``export NAME=value`` lines pointing falkit at an emulator serving ``base_url``."""
    roles = ("queue", "run", "rest", "cdn", "api")
    lines = [
        export(name, f"{base_url}/{role}") for name, role in zip(ENV_NAMES, roles, strict=True)
    ]
    return [*lines, export("FAL_API_KEY", api_key)]


def fal_client_lines(listening: Listening, api_key: str, ca_file: Path) -> list[str]:
    """The lines an unchanged fal-client app needs: key, its two hosts, the CA to trust."""
    assert listening.run_host is not None
    assert listening.queue_host is not None
    values = (api_key, listening.run_host, listening.queue_host, str(ca_file))
    return [export(name, value) for name, value in zip(FAL_CLIENT_NAMES, values, strict=True)]


def _fail(problem: str, fix: str) -> typer.Exit:
    sys.stderr.write(f"Error: {problem}.\nFix: {fix}.\n")
    return typer.Exit(1)


def _data_dir(path: Path | None) -> Path | None:
    """``--data``: the folder, made and checked writable (a usage error otherwise)."""
    if path is None:
        return None
    path = path.expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".falkit-write-check"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise _fail(
            f"cannot keep emulator data in {path}: {exc.strerror or exc}",
            "pass --data a folder you can write to",
        ) from None
    return path


def _tls_files(host: str) -> tuple[Path, Path, Path]:
    """(certificate chain, key, CA bundle) from the CA cached under FALKIT_HOME."""
    from falkit.config import load_settings
    from falkit.emulator.tls import ensure_tls

    folder = load_settings().home / "emulator" / "tls"
    try:
        files = ensure_tls(folder, [host])
    except OSError as exc:
        raise _fail(
            f"cannot write the emulator's certificates to {folder}: {exc.strerror or exc}",
            "set FALKIT_HOME to a folder you can write to",
        ) from None
    return files.cert, files.key, files.bundle


def _banner(listening: Listening, falkit: list[str], fal: list[str], about: str) -> str:
    base = listening.base_url
    text = f"Fal emulator on {base} ({about}). Use it with:\n"
    text += "".join(f"  {line}\n" for line in falkit)
    if fal:
        text += "An unchanged fal-client app (https, trusting the emulator's CA) needs:\n"
        text += "".join(f"  {line}\n" for line in fal)
        text += "  (fal-client uploads: set fal_client.client.REST_URL and CDN_URL in the app to"
        text += f" {base}/rest and {base}/cdn; see docs/emulator.md)\n"
    return text + f"Counters: GET {base}/_emulator/stats. Stop with Ctrl-C.\n"


def _print_env(lines: list[str]) -> None:
    try:
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        sys.stdout.flush()
    except OSError:  # nobody reads stdout any more (e.g. `| head -1`): keep serving
        pass


def emulator(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(
        8765, "--port", help="Port to listen on; 0 picks a free one. --tls also uses the next two."
    ),
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
    tls: bool = typer.Option(
        False,
        "--tls",
        help="Serve https (a local CA cached under FALKIT_HOME) with the queue and run roles on "
        "their own ports, for unchanged fal-client apps; prints FAL_KEY, FAL_RUN_HOST, "
        "FAL_QUEUE_RUN_HOST and SSL_CERT_FILE too.",
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        metavar="DIR",
        help="Keep jobs and files in DIR across restarts (default: in memory).",
    ),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request to stderr."),
) -> None:
    """Serve a Fal-compatible emulator; point falkit at it with FALKIT_*_URL (printed).

    Examples:

      falkit emulator --port 0 --env

      falkit emulator --tls --data ./emulator-data
    """
    from falkit.config import EMULATOR_KEY
    from falkit.emulator import EmulatorConfig
    from falkit.emulator.server import ListenError, serve

    try:
        config = EmulatorConfig(
            latency=latency,
            concurrency=concurrency,
            training_seconds=training_seconds,
            plain_images=plain_images,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    config.data_dir = _data_dir(data)
    cert, key, ca_file = _tls_files(host) if tls else (None, None, None)
    about = f"placeholder images; latency {latency:g} s, concurrency {concurrency}"
    about += f"; jobs and files kept in {config.data_dir}" if config.data_dir else ""

    def ready(listening: Listening) -> None:
        lines = env_lines(listening.base_url, EMULATOR_KEY)
        fal = fal_client_lines(listening, EMULATOR_KEY, ca_file) if ca_file else []
        sys.stderr.write(_banner(listening, lines, fal, about))
        sys.stderr.flush()
        if env:
            _print_env(lines + fal)

    ssl = (cert, key) if cert and key else None
    try:
        serve(
            host=host, port=port, config=config, on_ready=ready, access_log=access_log,
            ssl=ssl, split_roles=tls,
        )  # fmt: skip
    except ListenError as exc:
        fix = "pick another --port (0 picks free ones)"
        raise _fail(f"cannot listen on {exc.address}: {exc.strerror or exc}", fix) from None
    except OSError as exc:  # the --data folder went away or cannot be read
        raise _fail(f"cannot serve the emulator: {exc}", "check the --data folder") from None


def register(app: typer.Typer) -> None:
    app.command("emulator")(emulator)
