"""Kill -9 trials: `falkit generate` and `falkit batch` killed at random moments, then recovered.

Every run shares one library. Each `falkit generate` run (a prompt and seed of its own) and
each `falkit batch` run (a file of prompts of its own) is killed with SIGKILL at a moment drawn
uniformly over the time an unkilled run takes (calibrated first), so kills land before the
journal, mid-submit, while queued, while downloading, or after the end. Then recovery runs as a
user would: `falkit jobs resume`, `falkit batch resume ID` for each batch, `falkit jobs
reconcile`, again until nothing is left to do (a deadline bounds it).

What is checked, against the emulator's request history (its platform API) and the library:

* duplicates — requests Fal received beyond the first for one (prompt, seed): paid twice;
* lost — journaled jobs that did not end completed, plus requests Fal received that no job in
  the library holds (paid, never fetched);
* unknown left — jobs still ``unknown`` after recovery.

The emulator runs in a thread of this process; the falkit processes talk to it over HTTP. Its
submits are made slow at random (before the job is queued, or between queueing it and
answering), so kills land mid-submit often enough to leave ``unknown`` jobs of both kinds.
``FALKIT_RECONCILE_AFTER`` is 1 s here (a killed process's last bytes reach a loopback server
within milliseconds; real Fal gets the 600 s default).

    python bench/kill_trials.py                  # 50 generate runs, 10 batches
    python bench/kill_trials.py --runs 5 --batches 2 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENDPOINT = "fal-ai/flux/schnell"
KEY = "emulator-key:emulator-secret"
RECOVERY_DEADLINE = 240.0
CLI_TIMEOUT = 180.0


@dataclass
class Report:
    """The figures of one set of trials."""

    generate_runs: int = 0
    batch_runs: int = 0
    kills: int = 0
    """Runs that were still running when their kill came (the rest had ended by then)."""
    journaled_jobs: int = 0
    submits: int = 0
    duplicates: int = 0
    lost: int = 0
    unknown_left: int = 0
    recovery_rounds: int = 0
    unknown_after_resume: int = 0
    """Unknown jobs `jobs resume` left for a later `jobs reconcile` (too recent to release)."""
    found_at_fal: int = 0
    """Unknown jobs reconciled as found in Fal's request history (reattached)."""
    never_arrived: int = 0
    """Unknown jobs reconciled as never received (sent once)."""
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.lost == 0 and self.unknown_left == 0


def default_sigint() -> None:
    """In a child: the default Ctrl-C handler, whatever the parent ignores."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def falkit_env(base_url: str, home: Path, reconcile_after: float = 1.0) -> dict[str, str]:
    """The environment of a falkit process pointed at the emulator, with its own library."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALKIT_"))}
    roles = {"QUEUE": "queue", "RUN": "run", "REST": "rest", "CDN": "cdn", "API": "api"}
    env.update({f"FALKIT_{name}_URL": f"{base_url}/{role}" for name, role in roles.items()})
    env.update(FAL_API_KEY=KEY, FALKIT_HOME=str(home), FALKIT_RECONCILE_AFTER=str(reconcile_after))
    return env


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "falkit", *args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, text=True, preexec_fn=default_sigint,
    )  # fmt: skip


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "falkit", *args],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=CLI_TIMEOUT, check=False, preexec_fn=default_sigint,
    )  # fmt: skip


def run_and_kill(
    args: list[str], env: dict[str, str], after: float | None, db: Path | None = None
) -> bool:
    """Run ``falkit ARGS``; SIGKILL it ``after`` seconds in (None: let it finish), counted from
    the moment it journals a job when ``db`` is given. True if the kill found it running."""
    before = count_jobs(db) if db is not None else 0
    proc = spawn(args, env)
    try:
        if db is not None and not journaled(proc, db, before):
            return False
        proc.wait(timeout=after)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def journaled(proc: subprocess.Popen[str], db: Path, before: int) -> bool:
    """Wait until the process has journaled a job (True) or ended (False)."""
    deadline = time.monotonic() + CLI_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        if count_jobs(db) > before:
            return True
        time.sleep(0.005)
    return proc.poll() is None


def generate_args(index: int) -> list[str]:
    return ["generate", f"kill trial {index}", "--seed", str(index), "--size", "square"]


def batch_args(folder: Path, index: int, jobs: int) -> list[str]:
    prompts = folder / f"batch-{index}.txt"
    prompts.write_text("".join(f"kill batch {index} prompt {k}\n" for k in range(jobs)))
    return ["batch", str(prompts), "--size", "square", "--concurrency", "3"]


def calibrate(args: list[str], env: dict[str, str], db: Path) -> tuple[float, float]:
    """Seconds one unkilled run takes in all, and from its journal to its end."""
    before = count_jobs(db)
    started = time.monotonic()
    proc = spawn(args, env)
    journaled(proc, db, before)
    noted = time.monotonic()
    proc.wait()
    ended = time.monotonic()
    return ended - started, ended - noted


def kill_all(
    make: Any, count: int, env: dict[str, str], db: Path, rng: random.Random, answers: Any
) -> int:
    """Run ``make(i)`` ``count`` times, each killed at a random moment: a quarter drawn over
    the whole run, half over the part after the journal (where the submit is), and a quarter
    (with ``answers``, the emulator's SlowAnswers) just after Fal queued a job and before its
    answer left."""
    total, tail = calibrate(make(-1), env, db)
    kills = 0
    for i in range(count):
        draw = rng.random()
        if draw < 0.25:
            kills += run_and_kill(make(i), env, rng.uniform(0, total * 1.1))
        elif draw < 0.5 and answers is not None:
            kills += kill_mid_submit(make(i), env, answers)
        else:
            kills += run_and_kill(make(i), env, rng.uniform(0, tail * 1.1), db)
    return kills


def kill_mid_submit(args: list[str], env: dict[str, str], answers: Any) -> bool:
    """SIGKILL a run the moment the emulator has queued its (first) submit and holds the
    answer back."""
    answers.holding.clear()
    answers.hold_next.set()
    proc = spawn(args, env)
    deadline = time.monotonic() + CLI_TIMEOUT
    while not answers.holding.wait(0.01):
        if proc.poll() is not None or time.monotonic() > deadline:
            answers.hold_next.clear()
            return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def trials(
    base_url: str,
    home: Path,
    *,
    runs: int,
    batches: int,
    batch_jobs: int,
    seed: int,
    answers: Any = None,
) -> Report:
    """Kill ``runs`` generate runs and ``batches`` batch runs, recover, and check."""
    rng = random.Random(seed)
    env = falkit_env(base_url, home)
    db = home / "falkit.db"
    report = Report(generate_runs=runs, batch_runs=batches)
    folder = home.parent / "batch-inputs"
    folder.mkdir(parents=True, exist_ok=True)
    if runs:
        report.kills += kill_all(generate_args, runs, env, db, rng, answers)
    if batches:
        make = functools.partial(batch_args, folder, jobs=batch_jobs)
        report.kills += kill_all(make, batches, env, db, rng, answers)
    recover(env, home, report)
    check(base_url, home, report)
    return report


def recover(env: dict[str, str], home: Path, report: Report) -> None:
    """What a user does after a crash, until the library has nothing unfinished or unknown."""
    deadline = time.monotonic() + RECOVERY_DEADLINE
    db = home / "falkit.db"
    while True:
        report.recovery_rounds += 1
        resumed = cli(["jobs", "resume"], env)  # reconciles first: its notes tell the verdicts
        report.found_at_fal += resumed.stderr.count("reached Fal as request")
        report.never_arrived += resumed.stderr.count("never reached Fal")
        for batch_id in unfinished_batches(db):
            cli(["batch", "resume", batch_id], env)
        report.unknown_after_resume += by_status(db).get("unknown", 0)
        done = cli(["jobs", "reconcile", "--json"], env)
        verdicts = Counter(row["verdict"] for row in json.loads(done.stdout or "[]"))
        report.found_at_fal += verdicts["found"]
        report.never_arrived += verdicts["released"]
        left = {k: v for k, v in by_status(db).items() if k not in ("completed", "failed")}
        if not left or time.monotonic() > deadline:
            return


def check(base_url: str, home: Path, report: Report) -> None:
    """Duplicates, lost jobs and unknown jobs left, from the history and the library."""
    history = request_history(base_url)
    report.submits = len(history)
    keys = Counter(
        (item["json_input"].get("prompt"), item["json_input"].get("seed")) for item in history
    )
    report.duplicates = sum(count - 1 for count in keys.values() if count > 1)
    report.details += [f"paid {n} times: {key}" for key, n in keys.items() if n > 1]
    rows = jobs(home / "falkit.db")
    report.journaled_jobs = len(rows)
    held = {row["request_id"] for row in rows if row["status"] == "completed"}
    orphans = [item["request_id"] for item in history if item["request_id"] not in held]
    unfinished = [row for row in rows if row["status"] != "completed"]
    report.lost = len(orphans) + len(unfinished)
    report.details += [f"request {rid} held by no completed job" for rid in orphans]
    report.details += [f"job {row['id']} is {row['status']}: {row['error']}" for row in unfinished]
    report.unknown_left = sum(1 for row in rows if row["status"] == "unknown")


def request_history(base_url: str) -> list[dict[str, Any]]:
    """Every request the emulator accepted, with its input (its platform API, all pages)."""
    import httpx

    url = f"{base_url}/api/models/requests/by-endpoint"
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    params = {"endpoint_id": ENDPOINT, "expand": "payloads", "limit": "100", "start": start}
    items: list[dict[str, Any]] = []
    headers = {"Authorization": f"Key {KEY}"}
    while True:
        page = httpx.get(url, params=params, headers=headers, timeout=30).json()
        items += page["items"]
        if not page.get("has_more"):
            return items
        params["cursor"] = page["next_cursor"]


def jobs(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM jobs")]


def count_jobs(db: Path) -> int:
    """Jobs journaled so far (0 while the library is being created)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
    except sqlite3.OperationalError:  # no table yet
        return 0


def by_status(db: Path) -> dict[str, int]:
    return dict(Counter(row["status"] for row in jobs(db)))


def unfinished_batches(db: Path) -> list[str]:
    done = ("completed", "failed", "cancelled")
    return sorted(
        {row["batch_id"] for row in jobs(db) if row["batch_id"] and row["status"] not in done}
    )


class SlowAnswers:
    """ASGI middleware: some submit answers leave ``delay`` seconds after the job was queued
    (a kill then leaves a job Fal accepted without its request id: reconciled as found).

    ``hold_next`` makes the next submit's answer one of them for sure, and ``holding`` is set
    while it waits: a kill aimed at that moment."""

    def __init__(self, app: Any, rng: random.Random, delay: float = 0.3, share: float = 0.3):
        self.app, self.rng, self.delay, self.share = app, rng, delay, share
        self.hold_next = threading.Event()
        self.holding = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        submit = scope["type"] == "http" and scope["method"] == "POST"
        if not (submit and str(scope["path"]).startswith("/queue/")):
            await self.app(scope, receive, send)
            return
        aimed = self.hold_next.is_set()
        self.hold_next.clear()
        if not aimed and self.rng.random() > self.share:
            await self.app(scope, receive, send)
            return

        async def slow(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                if aimed:
                    self.holding.set()
                await asyncio.sleep(self.delay)
            await send(message)

        await self.app(scope, receive, slow)


def emulator(config: Any, seed: int = 0) -> Any:
    """An emulator (not started) with slow submits: 30 % wait 0.2 s before the job is queued,
    30 % of the others answer 0.2 s after it was: wider windows for kills mid-submit."""
    from falkit.emulator import EmulatorServer, Fault

    server = EmulatorServer(config)
    server.app = SlowAnswers(server.app, random.Random(seed))
    server.faults.add(Fault(route="submit", kind="slow", delay=0.2, probability=0.3, times=None))
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="falkit generate runs to kill")
    parser.add_argument("--batches", type=int, default=10, help="falkit batch runs to kill")
    parser.add_argument("--batch-jobs", type=int, default=6, help="jobs per batch")
    parser.add_argument("--seed", type=int, default=11, help="seed of the kill moments")
    parser.add_argument("--latency", type=float, default=0.5, help="emulated job seconds")
    options = parser.parse_args()
    from falkit.emulator import EmulatorConfig

    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # clients killed mid-request
    config = EmulatorConfig(latency=options.latency, concurrency=8, plain_images=True)
    with tempfile.TemporaryDirectory() as tmp, emulator(config, options.seed) as emu:
        started = time.monotonic()
        report = trials(
            emu.base_url, Path(tmp) / "home", runs=options.runs, batches=options.batches,
            batch_jobs=options.batch_jobs, seed=options.seed, answers=emu.app,
        )  # fmt: skip
        figures = {k: v for k, v in asdict(report).items() if k != "details"}
        figures["seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps(figures, indent=2))
        for line in report.details[:20]:
            print(" ", line)
        print("OK" if report.ok else "FAILED")
        raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
