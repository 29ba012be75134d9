"""Step counters are read tolerantly; each status transition is reported once."""

from __future__ import annotations

import pytest

from falkit.events import LogEvent, QueuedEvent, StartedEvent, StepEvent
from falkit.service.progress import EventMapper, parse_step
from falkit.types import Completed, InProgress, LogEntry, Queued


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("step 3/28", (3, 28)),
        ("Step 12 / 50 done", (12, 50)),
        (" 45%|####5     | 9/20 [00:01<00:02,  4.50it/s]", (9, 20)),
        ("progress: 40%", (40, 100)),
        ("Loading model weights", None),
        ("2024/12/20 15:37 starting", None),
        ("ratio 30/20", None),
        ("0/0", None),
    ],
)
def test_parse_step(line: str, expected: tuple[int, int] | None) -> None:
    assert parse_step(line) == expected


def test_mapper_reports_each_transition_once() -> None:
    mapper = EventMapper("j1")
    statuses = [
        Queued(2),
        Queued(2),
        Queued(1),
        InProgress((LogEntry("Loading model", "t1"),)),
        InProgress((LogEntry("step 1/4", "t2"), LogEntry("step 2/4", "t3"))),
        InProgress(()),
        Completed((LogEntry("step 4/4", "t4"),)),
    ]
    events = [e for s in statuses for e in mapper.events(s)]
    kinds = [type(e) for e in events]
    assert kinds[:3] == [QueuedEvent, QueuedEvent, StartedEvent]
    assert [e.position for e in events if isinstance(e, QueuedEvent)] == [2, 1]
    assert [(e.step, e.total) for e in events if isinstance(e, StepEvent)] == [
        (1, 4),
        (2, 4),
        (4, 4),
    ]
    assert next(e.message for e in events if isinstance(e, LogEvent)) == "Loading model"
    assert kinds.count(StartedEvent) == 1
