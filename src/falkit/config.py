"""Settings, read on demand (never at import time).

API key lookup order: FAL_API_KEY, then FAL_KEY, then FAL_KEY_ID + FAL_KEY_SECRET joined by
":". A .env file in the working directory is read; real environment variables win over it.
Last comes the key file that `falkit keys set` writes (see falkit.keyfile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from falkit.limits import url_problem

EMULATOR_KEY = "emulator-key:emulator-secret"


def mask_key(key: str | None) -> str:
    """A key shown safely: key_…abcd."""
    if not key:
        return "<none>"
    return f"key_…{key[-4:]}" if len(key) >= 12 else "key_…"


def _default_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("falkit", appauthor=False))


class Settings(BaseSettings):
    """Everything falkit reads from the environment."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment, then .env, then the key file of `falkit keys set` (key only)."""
        from falkit.keyfile import KeyFileSource

        key_file = KeyFileSource(settings_cls)
        return init_settings, env_settings, dotenv_settings, key_file, file_secret_settings

    api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("FAL_API_KEY", "FAL_KEY"), repr=False
    )
    key_id: SecretStr | None = Field(None, validation_alias="FAL_KEY_ID", repr=False)
    key_secret: SecretStr | None = Field(None, validation_alias="FAL_KEY_SECRET", repr=False)
    home: Path = Field(default_factory=_default_home, validation_alias="FALKIT_HOME")
    database_url: str | None = Field(None, validation_alias="FALKIT_DATABASE_URL")
    storage_url: str | None = Field(None, validation_alias="FALKIT_STORAGE_URL")
    """Where images are kept: None for FALKIT_HOME/images, or ``s3://bucket/prefix`` (any
    S3-compatible store; its endpoint and keys come from the usual AWS_* variables)."""
    queue_url: str = Field("https://queue.fal.run", validation_alias="FALKIT_QUEUE_URL")
    run_url: str = Field("https://fal.run", validation_alias="FALKIT_RUN_URL")
    rest_url: str = Field("https://rest.fal.ai", validation_alias="FALKIT_REST_URL")
    cdn_url: str = Field("https://v3.fal.media", validation_alias="FALKIT_CDN_URL")
    api_url: str = Field("https://api.fal.ai/v1", validation_alias="FALKIT_API_URL")
    """Fal's platform API (request history, used to reconcile ``unknown`` jobs)."""
    reconcile_after: float = Field(600.0, ge=0, validation_alias="FALKIT_RECONCILE_AFTER")
    """Seconds after its submit before an ``unknown`` job missing from Fal's request history
    is taken as never accepted and sent again (the history may lag, and may list a request
    only once it has ended)."""
    emulator: bool = Field(False, validation_alias="FALKIT_EMULATOR")
    public_url: str | None = Field(None, validation_alias="FALKIT_PUBLIC_URL")
    """Where Fal can reach `falkit serve` (``{public_url}/webhooks/fal`` is every submit's
    webhook); None: jobs are followed by status streams and polls."""
    api_token: SecretStr | None = Field(None, validation_alias="FALKIT_API_TOKEN", repr=False)
    """Bearer token of `falkit serve`'s API (required when it listens beyond loopback)."""
    jwks_url: str | None = Field(None, validation_alias="FALKIT_JWKS_URL")
    """Fal's webhook signing keys; None: Fal's published JWKS (the emulator's with --emulator)."""

    @field_validator("*", mode="after")
    @classmethod
    def _check_url(cls, value: Any, info: ValidationInfo) -> Any:
        """Every ``*_url`` setting but the database's is a base http(s) URL: a bad one is a
        one-line error naming its variable now, not a failed request after a job was journaled."""
        name = info.field_name or ""
        local = ("database_url", "storage_url")
        if name.endswith("_url") and name not in local and isinstance(value, str):
            why = url_problem(value)
            if why is not None:
                raise ValueError(f"{value[:100]!r} {why}")
        return value

    @model_validator(mode="after")
    def _join_key(self) -> Settings:
        if self.api_key is None and self.key_id and self.key_secret:
            joined = f"{self.key_id.get_secret_value()}:{self.key_secret.get_secret_value()}"
            self.api_key = SecretStr(joined)
        for name in ("queue_url", "run_url", "rest_url", "cdn_url", "api_url"):
            setattr(self, name, getattr(self, name).rstrip("/"))
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.api_key and self.api_key.get_secret_value().strip())

    @property
    def key(self) -> str | None:
        """The raw key, for the Authorization header only."""
        return self.api_key.get_secret_value() if self.api_key else None

    @property
    def masked_key(self) -> str:
        return mask_key(self.key)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.home / 'falkit.db'}"

    @property
    def fal_urls(self) -> tuple[str, ...]:
        """The only places the key may be sent."""
        return (self.queue_url, self.run_url, self.rest_url, self.cdn_url, self.api_url)

    def __repr__(self) -> str:
        return f"Settings(key={self.masked_key}, home={self.home}, queue_url={self.queue_url})"

    __str__ = __repr__

    def with_urls(self, base: str, **extra: Any) -> Settings:
        """A copy pointed at an emulator (or proxy) serving every role under one base."""
        base = base.rstrip("/")
        return self.model_copy(
            update={
                "queue_url": f"{base}/queue",
                "run_url": f"{base}/run",
                "rest_url": f"{base}/rest",
                "cdn_url": f"{base}/cdn",
                "api_url": f"{base}/api",
                **extra,
            }
        )


def load_settings(**overrides: Any) -> Settings:
    """Read settings now (environment, then .env); keyword overrides (field names) win."""
    settings = _read_settings()
    if "api_key" in overrides and isinstance(overrides["api_key"], str):
        overrides["api_key"] = SecretStr(overrides["api_key"])
    if "home" in overrides:
        overrides["home"] = Path(overrides["home"])
    return settings.model_copy(update=overrides) if overrides else settings


def _read_settings() -> Settings:
    """Settings from the environment; a bad value is a ValidationError naming its variable.

    The value itself is left out of the message unless a check put it there (a key or a
    database URL with a password must not be printed).
    """
    import pydantic

    from falkit.errors import FieldError, ValidationError

    try:
        return Settings()
    except pydantic.ValidationError as exc:
        errors = [
            FieldError(
                ".".join(str(p) for p in err["loc"]) or "settings",
                err["msg"].removeprefix("Value error, ")
                + "; fix or unset it (environment or .env)",
            )
            for err in exc.errors()
        ]
        raise ValidationError(errors) from None
