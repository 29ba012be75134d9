"""`falkit models`: the catalog with uses, defaults and prices; `models show` a model's
parameters."""

from __future__ import annotations

import sys
from typing import Any

import typer

from falkit.cli.common import JSON_OPTION, print_json, run
from falkit.cli.help import MODELS, examples, one_of

app = typer.Typer(
    help="The model catalog: `falkit models` lists it, `falkit models show NAME` details one.",
    invoke_without_command=True,
)


def catalog_rows() -> list[dict[str, Any]]:
    from falkit.catalog import MODELS as CATALOG

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
        for spec in CATALOG.values()
    ]


@app.callback(
    invoke_without_command=True,
    epilog=examples("falkit models", "falkit models --json", "falkit models show flux-dev"),
)
def models(ctx: typer.Context, json_out: bool = JSON_OPTION) -> None:
    """List the model catalog: name, endpoint, use, price rule and defaults.

    In a pipe, one tab-separated line per model."""
    if ctx.invoked_subcommand is not None:
        return
    rows = catalog_rows()
    if json_out:
        print_json(rows)
        return
    from falkit.cli.table import Column, print_table

    columns = [Column(t) for t in ("name", "endpoint", "use", "price", "defaults")]
    print_table(columns, [_catalog_cells(row) for row in rows])


def _catalog_cells(row: dict[str, Any]) -> list[str]:
    defaults = ", ".join(f"{k}={v}" for k, v in row["defaults"].items() if k in _SHOWN_DEFAULTS)
    return [row["name"], row["endpoint_id"], row["use"], row["price"], defaults]


_SHOWN_DEFAULTS = {"image_size", "num_inference_steps", "guidance_scale", "steps", "output_format"}


@app.command(
    "show",
    epilog=examples(
        "falkit models show flux-schnell",
        "falkit models show sdxl --json",
        'falkit generate "a fox" -m sdxl -p negative_prompt="blurry, text"',
    ),
)
def show(
    name: str = typer.Argument(..., help=f"A model: {one_of(MODELS)} (or its fal-ai/... id)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Every parameter of a model: type, allowed values or range, default, flag.

    A parameter without a flag of its own is set with `falkit generate -p NAME=VALUE`."""
    spec = run(lambda: _spec(name))
    from falkit.cli.model_params import parameter_rows

    rows = parameter_rows(spec)
    if json_out:
        print_json({**_summary(spec), "parameters": rows})
        return
    _print_model(spec, rows)


async def _spec(name: str) -> Any:
    from falkit.catalog import get_model
    from falkit.errors import ValidationError

    spec = get_model(name.strip())
    if spec is None:
        raise ValidationError.field(
            "model",
            f"{name!r} is not in the catalog: its parameters are unknown to falkit "
            "(they pass through unchecked with -p)",
            one_of(MODELS),
        )
    return spec


def _summary(spec: Any) -> dict[str, Any]:
    return {
        "name": spec.name,
        "endpoint_id": spec.endpoint_id,
        "use": spec.use,
        "kind": spec.kind,
        "price": spec.price.describe(),
        "takes_loras": spec.takes_loras,
    }


def _print_model(spec: Any, rows: list[dict[str, Any]]) -> None:
    """A pipe gets one tab-separated line per parameter; a terminal, the model's facts then a
    parameter per entry (two columns, so nothing is squeezed out at 80 columns)."""
    from falkit.cli.model_params import default_text, details
    from falkit.cli.records import format_fields
    from falkit.cli.table import Column, is_terminal, print_table, write_tsv

    if not is_terminal():
        write_tsv(sys.stdout, [[r["name"], r["type"], r["allowed"], default_text(r), r["flag"],
                                r["description"]] for r in rows])  # fmt: skip
        return
    facts = [("model", spec.name), ("endpoint", spec.endpoint_id), ("use", spec.use)]
    facts.append(("price", spec.price.describe()))
    sys.stdout.write(format_fields(facts) + "\n")
    sys.stdout.flush()
    columns = [Column("parameter", keep=True), Column("")]
    print_table(columns, [[r["name"], details(r)] for r in rows])
    sys.stdout.write(f"\nAny parameter: falkit generate PROMPT -m {spec.name} -p NAME=VALUE\n")


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="models")
