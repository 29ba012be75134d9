"""`falkit models`: the catalog with uses, defaults and prices."""

from __future__ import annotations

from typing import Any

import typer

from falkit.cli.common import JSON_OPTION, print_json


def catalog_rows() -> list[dict[str, Any]]:
    from falkit.catalog import MODELS

    return [
        {
            "name": spec.name,
            "endpoint_id": spec.endpoint_id,
            "use": spec.use,
            "kind": spec.kind,
            "defaults": spec.defaults(),
            "price": spec.price.describe(),
            "takes_loras": spec.takes_loras,
        }
        for spec in MODELS.values()
    ]


def models(json_out: bool = JSON_OPTION) -> None:
    """List the model catalog: name, endpoint, use, defaults and price rule."""
    rows = catalog_rows()
    if json_out:
        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table()
    table.add_column("name", no_wrap=True)
    for title in ("endpoint", "use", "price", "defaults"):
        table.add_column(title)
    for row in rows:
        defaults = ", ".join(f"{k}={v}" for k, v in row["defaults"].items() if k in _SHOWN_DEFAULTS)
        table.add_row(row["name"], row["endpoint_id"], row["use"], row["price"], defaults)
    Console().print(table)


_SHOWN_DEFAULTS = {"image_size", "num_inference_steps", "guidance_scale", "steps", "output_format"}


def register(app: typer.Typer) -> None:
    app.command("models")(models)
