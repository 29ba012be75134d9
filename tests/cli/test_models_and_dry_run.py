"""The CLI's catalog listing, dry runs and input errors (no network involved)."""

from __future__ import annotations

import json
import sys

from typer.testing import CliRunner

from falkit.cli.app import app
from tests.processes import run

runner = CliRunner()


def test_models_lists_all_eight() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    for name in ("flux-schnell", "flux-pro-1.1", "sdxl", "flux-lora-training"):
        assert name in result.output


def test_models_json() -> None:
    result = runner.invoke(app, ["models", "--json"])
    rows = json.loads(result.stdout)
    assert len(rows) == 8
    schnell = next(r for r in rows if r["name"] == "flux-schnell")
    assert schnell["endpoint_id"] == "fal-ai/flux/schnell"
    assert schnell["defaults"]["num_inference_steps"] == 4
    assert "$0.003 per megapixel" in schnell["price"]


def test_dry_run_prints_request_and_cost_without_a_key() -> None:
    result = runner.invoke(
        app,
        ["generate", "a cat", "--model", "flux-dev", "--size", "1024x1024", "--dry-run", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["endpoint_id"] == "fal-ai/flux/dev"
    assert data["arguments"]["image_size"] == {"width": 1024, "height": 1024}
    assert data["estimated_cost"] == 0.05  # 1.05 MP rounded up to 2 MP at $0.025


def test_invalid_input_is_one_line_and_exit_2() -> None:
    result = runner.invoke(app, ["generate", "a cat", "--steps", "99", "--dry-run"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) <= 2
    assert "num_inference_steps" in result.stderr
    assert "1 to 12" in result.stderr
    assert "Traceback" not in result.output


def test_no_key_exits_3_with_the_fix() -> None:
    result = runner.invoke(app, ["generate", "a cat"])
    assert result.exit_code == 3
    assert "FAL_API_KEY" in result.stderr


def test_help_runs_as_a_process() -> None:
    out = run(
        [sys.executable, "-m", "falkit", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("generate", "jobs", "models", "emulator"):
        assert command in out.stdout


def test_help_imports_nothing_heavy() -> None:
    """`falkit --help` stays fast: the CLI module loads no HTTP, database, image or MCP code."""
    code = (
        "import sys, falkit.cli.app; "
        "heavy = ('sqlalchemy', 'httpx', 'mcp', 'PIL', 'pydantic', 'starlette', 'alembic'); "
        "print([m for m in heavy if m in sys.modules])"
    )
    out = run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
