"""`falkit keys`: store the Fal key in the user's config folder and see which key is used.

The key is read without echo (or from standard input), written to a 0600 file, and only ever
shown masked (`key_…abcd`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from falkit.cli.common import EXIT_DISABLED, JSON_OPTION, print_json, reported, stderr
from falkit.cli.help import examples

if TYPE_CHECKING:
    from falkit.config import Settings
    from falkit.keyfile import KeyOrigin

app = typer.Typer(
    help="Store your Fal key in your user config folder (mode 0600) and see which key is used.",
    no_args_is_help=True,
)


@app.command(
    "set",
    epilog=examples(
        "falkit keys set              (asks for the key, input hidden)",
        "pbpaste | falkit keys set",
        "falkit keys set < ~/fal-key.txt",
    ),
)
def set_key(json_out: bool = JSON_OPTION) -> None:
    """Store the key (typed without echo, or piped) in the key file, mode 0600.

    The key file (`falkit keys path`) is read when FAL_API_KEY, FAL_KEY and
    FAL_KEY_ID/FAL_KEY_SECRET are set neither in the environment nor in a .env file."""
    from falkit.config import mask_key
    from falkit.keyfile import check_key_text, write_key

    with reported():
        key = check_key_text(_read_secret())
        path = write_key(key)
        origin = _origin()
    if json_out:
        print_json({"key": mask_key(key), "path": str(path), "used": origin.kind == "key file"})
        return
    sys.stdout.write(f"saved key {mask_key(key)} to {path} (readable by you only)\n")
    if origin.kind in ("environment", ".env"):
        stderr().print(
            f"note: the key from {origin.describe()} is used while it is set; "
            "unset it to use the stored one",
            soft_wrap=True,
        )


def _read_secret() -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("Fal key (from fal.ai/dashboard/keys; input hidden): ")
    return sys.stdin.readline()


@app.command("show", epilog=examples("falkit keys show", "falkit keys show --json"))
def show(json_out: bool = JSON_OPTION) -> None:
    """The key in use, masked, and where it came from (environment, .env or the key file)."""
    from falkit.keyfile import key_path

    with reported():
        settings = _settings()
        origin = _origin(settings)
    path = key_path()
    data = {
        "key": settings.masked_key if settings.enabled else None,
        "source": origin.kind,
        "where": origin.where,
        "key_file": str(path),
        "key_file_exists": path.is_file(),
    }
    if json_out:
        print_json(data)
    elif settings.enabled:
        sys.stdout.write(f"{settings.masked_key}  from {origin.describe()}\n")
    if not settings.enabled:
        stderr().print(
            "[bold red]error:[/] no Fal key: run `falkit keys set`, or set FAL_API_KEY "
            "in the environment or a .env file",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_DISABLED)


@app.command("path", epilog=examples("falkit keys path", "ls -l $(falkit keys path)"))
def path() -> None:
    """Where `falkit keys set` stores the key (FALKIT_CONFIG_DIR moves the folder)."""
    from falkit.keyfile import key_path

    sys.stdout.write(f"{key_path()}\n")


def _settings() -> Settings:
    from falkit.config import load_settings

    return load_settings()


def _origin(settings: Settings | None = None) -> KeyOrigin:
    from falkit.keyfile import key_origin

    return key_origin(settings or _settings())


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="keys")
