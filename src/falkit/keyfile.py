"""The key file `falkit keys set` writes, and where the key in use came from.

The file is ``keys.json`` in the user's config folder (platformdirs' user_config_dir, or
``FALKIT_CONFIG_DIR``), mode 0600, written atomically: ``{"fal": "<key>"}``. Settings read it
last: FAL_API_KEY, FAL_KEY or FAL_KEY_ID + FAL_KEY_SECRET in the environment win, then the same
names in a ``.env`` file, then this file. Nothing here prints, logs or copies the key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

if TYPE_CHECKING:
    from falkit.config import Settings

CONFIG_DIR_ENV = "FALKIT_CONFIG_DIR"
FILE_NAME = "keys.json"
ENTRY = "fal"
_KEY_NAMES = ("FAL_API_KEY", "FAL_KEY")


def config_dir() -> Path:
    """The user's falkit config folder (FALKIT_CONFIG_DIR overrides it, as tests do)."""
    override = os.environ.get(CONFIG_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("falkit", appauthor=False))


def key_path() -> Path:
    return config_dir() / FILE_NAME


def read_key(path: Path | None = None) -> str | None:
    """The stored key, or None when there is no file (or no key in it)."""
    from falkit.errors import ValidationError

    path = path or key_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValidationError.field(
            "key file", f"{path} cannot be read ({exc.__class__.__name__})", _REWRITE
        ) from None
    value = data.get(ENTRY) if isinstance(data, dict) else None
    if value is not None and not isinstance(value, str):
        raise ValidationError.field("key file", f"{path} holds no key text", _REWRITE)
    return (value or "").strip() or None


_REWRITE = "fix or delete it, or write it again with `falkit keys set`"


def write_key(key: str, path: Path | None = None) -> Path:
    """Store the key (mode 0600, folder 0700), atomically: never half-written, never readable
    by others even for a moment."""
    path = path or key_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = json.dumps({ENTRY: key}, indent=2) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover temporary file keeps its old mode otherwise
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_key_text(text: str) -> str:
    """A key as typed or piped: one line, no spaces."""
    from falkit.errors import ValidationError

    key = text.strip()
    if not key:
        raise ValidationError.field("key", "is empty", "the key from fal.ai/dashboard/keys")
    if any(ch.isspace() for ch in key):
        raise ValidationError.field("key", "contains spaces or line breaks", "one line, no spaces")
    return key


class KeyFileSource(PydanticBaseSettingsSource):
    """Settings source for the key file: used only when no earlier source gave a key."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        state = self.current_state
        if any(state.get(name) for name in (*_KEY_NAMES, "api_key")):
            return {}
        if state.get("FAL_KEY_ID") and state.get("FAL_KEY_SECRET"):
            return {}
        key = read_key()
        return {"FAL_API_KEY": key} if key else {}


@dataclass(frozen=True)
class KeyOrigin:
    """Where the key in use was found: ``kind`` is environment, .env, key file, emulator,
    given (passed in code) or none; ``where`` names the variable or the file."""

    kind: str
    where: str = ""

    def describe(self) -> str:
        return f"{self.kind} ({self.where})" if self.where else self.kind


def key_origin(settings: Settings, dotenv: Path | None = None) -> KeyOrigin:
    """Which source holds the key these settings use (compared by value, never shown)."""
    from falkit.config import EMULATOR_KEY

    key = settings.key
    if not key:
        return KeyOrigin("none")
    found = _named(key, dict(os.environ))
    if found:
        return KeyOrigin("environment", found)
    env_file = dotenv or Path(".env")
    if env_file.is_file():
        found = _named(key, _dotenv_values(env_file))
        if found:
            return KeyOrigin(".env", f"{found} in {env_file.resolve()}")
    path = key_path()
    try:
        stored = read_key(path)
    except ValueError:
        stored = None
    if stored == key:
        return KeyOrigin("key file", str(path))
    if key == EMULATOR_KEY:
        return KeyOrigin("emulator", "its dummy key")
    return KeyOrigin("given", "passed to Settings")


def _named(key: str, values: dict[str, str | None]) -> str | None:
    for name in _KEY_NAMES:
        if (values.get(name) or "").strip() == key:
            return name
    key_id, secret = values.get("FAL_KEY_ID"), values.get("FAL_KEY_SECRET")
    if key_id and secret and f"{key_id}:{secret}" == key:
        return "FAL_KEY_ID + FAL_KEY_SECRET"
    return None


def _dotenv_values(path: Path) -> dict[str, str | None]:
    from dotenv import dotenv_values

    return dict(dotenv_values(path))
