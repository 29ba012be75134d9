"""Helpers for end-to-end tests: settings and environments pointed at an emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from falkit.config import EMULATOR_KEY, Settings, load_settings
from tests.processes import default_sigint


def emulator_settings(base_url: str, **extra: Any) -> Settings:
    return load_settings().with_urls(base_url, api_key=SecretStr(EMULATOR_KEY), **extra)


def emulator_env(base_url: str, home: Path) -> dict[str, str]:
    """Environment for a falkit process talking to the emulator at base_url."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALKIT_"))}
    env.update(
        FAL_API_KEY=EMULATOR_KEY,
        FALKIT_HOME=str(home),
        FALKIT_CONFIG_DIR=str(home / "config"),  # never the user's own key file
        FALKIT_QUEUE_URL=f"{base_url}/queue",
        FALKIT_RUN_URL=f"{base_url}/run",
        FALKIT_REST_URL=f"{base_url}/rest",
        FALKIT_CDN_URL=f"{base_url}/cdn",
        FALKIT_API_URL=f"{base_url}/api",
    )
    return env


def falkit(
    *args: str, env: dict[str, str], timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run `python -m falkit ARGS` as a separate process with no standard input (and the
    default SIGINT handler)."""
    return subprocess.run(
        [sys.executable, "-m", "falkit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
        preexec_fn=default_sigint,
    )
