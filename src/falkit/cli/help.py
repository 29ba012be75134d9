"""Help text shared by the commands: the choices a user can type, and examples for epilogs.

The choices are plain constants, so `falkit --help` loads no catalog (pydantic); a test keeps
them equal to the catalog's, the presets' and the store's own lists.
"""

from __future__ import annotations

IMAGE_MODELS = (
    "flux-schnell",
    "flux-dev",
    "flux-pro",
    "flux-pro-1.1",
    "flux-realism",
    "flux-lora",
    "sdxl",
)
MODELS = (*IMAGE_MODELS, "flux-lora-training")
SIZE_PRESETS = (
    "square_hd",
    "square",
    "portrait_4_3",
    "portrait_16_9",
    "landscape_4_3",
    "landscape_16_9",
)
FORMATS = ("jpeg", "png")
JOB_STATUSES = (
    "pending",
    "submitting",
    "submitted",
    "running",
    "completed",
    "failed",
    "cancelled",
    "unknown",
)
JOB_REF = "A job id, a unique prefix of one (as `jobs list` shows), a Fal request id, or `last`."


def one_of(choices: tuple[str, ...]) -> str:
    return ", ".join(choices)


def examples(*lines: str) -> str:
    """An epilog listing example command lines (one per line in `--help`)."""
    body = "\n".join(f"  {_escape(line)}" for line in lines)
    return f"[bold]Examples[/]\n\n{body}"


def _escape(text: str) -> str:
    """Square brackets are Rich markup in help text; these are literal."""
    return text.replace("[", "\\[")
