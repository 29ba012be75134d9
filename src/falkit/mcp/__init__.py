"""falkit for chat assistants: an MCP server over FalService (`falkit mcp`).

Nothing here is imported by `falkit --help`; the mcp SDK loads only when a server is built::

    from falkit.mcp.app import McpApp, ServerOptions
    from falkit.mcp.server import create_server

Modules: app (what the tools do), server (the tool definitions), tooling (strict arguments,
closed schemas, one-line errors), params (the image parameters, described by the catalog),
answers (output schemas), content (answers, previews), resources (full-size images over MCP),
safety (allowed folders), progress (notifications), instructions (what the model is told on
connecting).
"""
