"""`falkit mcp`: serve falkit's tools to chat assistants over the Model Context Protocol.

The mcp SDK is imported only when the command runs, so `falkit --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from falkit.cli.bounds import seconds
from falkit.cli.common import EMULATOR_OPTION, run, stderr

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from falkit.mcp.app import ServerOptions

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def mcp(
    http: bool = typer.Option(
        False, "--http", help="Serve streamable HTTP (at /mcp) instead of stdio."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="HTTP address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="HTTP port to listen on."),
    allow_dir: list[Path] = typer.Option(
        [],
        "--allow-dir",
        help="A folder whose files tools may read (training pictures, LoRA files); "
        "repeatable. FALKIT_HOME is always allowed, nothing else is by default.",
    ),
    max_spend_usd: float | None = typer.Option(
        None,
        "--max-spend-usd",
        min=0,
        help="Refuse jobs whose estimate would take this server's spend past this many USD.",
    ),
    wait_seconds: float = typer.Option(
        50.0,
        "--wait-seconds",
        callback=seconds,
        help="How long a tool waits for a job before answering with its id (hosts allow ~60).",
    ),
    emulator: bool = EMULATOR_OPTION,
) -> None:
    """Serve falkit to chat assistants (Claude Desktop, Claude Code, Cursor) over MCP.

    In the client's MCP config: {"mcpServers": {"falkit": {"command": "falkit", "args":
    ["mcp"], "env": {"FAL_API_KEY": "..."}}}}. See docs/mcp.md.
    """
    from falkit.mcp.app import ServerOptions

    options = ServerOptions(
        allow_dirs=tuple(allow_dir), max_spend_usd=max_spend_usd, wait_seconds=wait_seconds
    )
    run(lambda: _serve(options, emulator=emulator, http=http, host=host, port=port))


async def _serve(
    options: ServerOptions, *, emulator: bool, http: bool, host: str, port: int
) -> None:
    from falkit.cli.common import open_service
    from falkit.mcp.app import McpApp
    from falkit.mcp.server import create_server

    async with open_service(emulator) as service, McpApp(service, options) as app:
        if not service.enabled:
            stderr().print(
                "[yellow]No FAL_API_KEY:[/] the tools will tell the assistant how to set it."
            )
        server = create_server(app)
        if http:
            await _serve_http(server, host, port)
        else:
            await server.run_stdio_async()


async def _serve_http(server: MCPServer[Any], host: str, port: int) -> None:
    if host not in LOOPBACK:
        stderr().print(
            f"[yellow]Listening on {host}:[/] anyone who can reach this port can spend your "
            "Fal credit; there is no authentication."
        )
    stderr().print(f"falkit MCP server at http://{host}:{port}/mcp")
    await server.run_streamable_http_async(host=host, port=port)


def register(app: typer.Typer) -> None:
    from falkit.cli.help import examples

    app.command(
        "mcp",
        epilog=examples(
            "falkit mcp --allow-dir ~/Pictures --max-spend-usd 5",
            "falkit mcp --http --host 127.0.0.1 --port 8000",
            "falkit mcp --emulator",
        ),
    )(mcp)
