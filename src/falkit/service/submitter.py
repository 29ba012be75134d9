"""Who is submitting a job: host, process id and the process's start time, and whether that
process still runs.

A job is marked ``submitting`` (with this text) right before its POST leaves. Another process
finding it so — a ``falkit jobs resume`` next to a slow submit — leaves it alone while its
submitter is alive; only a submitter that died mid-POST leaves a job that may need reconciling.
The start time guards against a reused process id.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None if unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = text[text.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


@functools.cache
def submitter_id() -> str:
    """``host:pid:start`` of this process."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def is_alive(submitter: str | None) -> bool | None:
    """Whether the process named by ``submitter`` still runs; None when it cannot be told
    (another host, or no record of who submitted)."""
    if not submitter:
        return None
    parts = submitter.rsplit(":", 2)
    if len(parts) != 3:
        return None
    host, pid_text, start = parts
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return start == (_start_ticks(pid) or "?")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    now = _start_ticks(pid)
    return now is None or start in ("?", now)
