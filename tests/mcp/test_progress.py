"""Progress over MCP says what the CLI says."""

from __future__ import annotations

from falkit.cli.render import describe as cli_line
from falkit.events import QueuedEvent
from falkit.mcp.progress import describe


def test_queue_position_reads_the_same_as_in_the_cli() -> None:
    """Position 0 is "next in line" on both sides (never "0 ahead" or "position 0")."""
    for position in (0, 1, 3):
        event = QueuedEvent("j_1", position)
        value, message = describe(event)
        assert value == 5.0
        assert message == cli_line(event)
    assert describe(QueuedEvent("j_1", 0))[1] == "queued at Fal (next in line)"
    assert cli_line(QueuedEvent("j_1", 0)) == "queued at Fal (next in line)"
    assert describe(QueuedEvent("j_1", 2))[1] == "queued at Fal (2 ahead)"
