"""What `falkit serve` was started with: where it listens, who may call it, how big uploads are.

Kept free of FastAPI so the CLI can build it (and refuse a bad combination) before loading the
web stack.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from falkit.errors import ValidationError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
MB = 1024 * 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a Host header's name) is this machine only."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WebOptions:
    """The web service's own settings (the Fal side is the service's Settings)."""

    host: str = "127.0.0.1"
    """Where the server listens: anything but loopback requires ``api_token``."""
    api_token: str | None = None
    """Bearer token for the API (FALKIT_API_TOKEN); the page trades it for a session cookie."""
    public_url: str | None = None
    """Where Fal reaches this server (FALKIT_PUBLIC_URL): webhooks go to ``/webhooks/fal``."""
    jwks_url: str | None = None
    """Fal's webhook keys (FALKIT_JWKS_URL); None: Fal's published key set."""
    max_upload_bytes: int = 200 * MB
    """Largest multipart request (a LoRA training set)."""
    max_json_bytes: int = 1 * MB
    """Largest JSON (or other non-upload) request body."""
    sse_ping: float = 15.0
    """Seconds between keep-alive comments on an idle event stream."""
    session_hours: float = 12.0
    """How long a login session lasts."""
    webhook_leeway: float = 300.0
    """A webhook's timestamp may be this many seconds off (Fal's rule: 5 minutes)."""

    def __post_init__(self) -> None:
        if self.api_token is not None and len(self.api_token.strip()) < 16:
            raise ValidationError.field(
                "FALKIT_API_TOKEN", "is shorter than 16 characters", "a long random string"
            )
        if not self.api_token and not is_loopback(self.host):
            raise ValidationError.field(
                "--host",
                f"listening on {self.host} needs FALKIT_API_TOKEN: without one anybody who "
                "can reach the port could spend your Fal credit",
                "set FALKIT_API_TOKEN (e.g. `openssl rand -hex 32`), or --host 127.0.0.1",
            )
        if self.public_url is not None and not self.public_url.startswith(("https://", "http://")):
            raise ValidationError.field(
                "FALKIT_PUBLIC_URL", f"{self.public_url!r} is not an http(s) URL"
            )

    @property
    def webhook_url(self) -> str | None:
        """What every submit carries as its webhook, when Fal can reach this server."""
        if not self.public_url:
            return None
        return self.public_url.rstrip("/") + "/webhooks/fal"
