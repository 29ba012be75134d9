"""`make mutation`: mutmut over the code that keeps jobs from being lost or paid for twice.

Each group below is one mutmut run in a copy of the working tree (``git ls-files``: tracked
and untracked-but-not-ignored files) under ``$MUTATION_DIR`` (default /tmp/falkit-mutation),
so no mutated file ever lands in the working tree others are testing. The copy's
``[tool.mutmut]`` is pyproject's, with the group's files (``only_mutate``) and its test selection
(``pytest_add_cli_args_test_selection``) put in. mutmut then maps every selected test to the
functions it calls and runs, for each mutant, only the tests that reach it (fastest first,
stopping at the first failure), in ONE forked worker (``--max-children 1``) at ``nice 10``.

Results: a table per module on stdout, and build/mutation/report.md (every mutant not killed,
with its diff). Exit 1 when a module's killed share is under ``$MUTATION_MIN`` (90 %).

    python scripts/mutation.py                 # every group, from scratch
    python scripts/mutation.py engine store    # some groups
    python scripts/mutation.py --report store  # the report of the last run, nothing run
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "mutation"
WORK = Path(os.environ.get("MUTATION_DIR", "/tmp/falkit-mutation"))
MINIMUM = float(os.environ.get("MUTATION_MIN", "90"))
BOUND = float(os.environ.get("MUTATION_GROUP_TIMEOUT", "2700"))  # seconds per group run


@dataclass(frozen=True)
class Group:
    """Files mutated together, and the tests that may kill their mutants."""

    mutate: tuple[str, ...]
    tests: tuple[str, ...]
    args: tuple[str, ...] = field(default=())  # extra pytest arguments for this group


GROUPS: dict[str, Group] = {
    # the HTTP layer: retry decisions, auth scoping, the submit probe, error mapping
    "client": Group(
        mutate=("src/falkit/client/retry.py", "src/falkit/client/http.py"),
        tests=(
            "tests/client",
            "tests/hardening/test_client_urls.py",
            "tests/hardening/test_gaps.py",
        ),
    ),
    # the engine's submit/journal path (and the rest of the engine)
    "engine": Group(
        mutate=("src/falkit/service/engine.py", "src/falkit/service/engine_parts.py"),
        tests=(
            "tests/engine/test_engine_rules.py",
            "tests/engine/test_engine_cancels.py",
            "tests/engine/test_handles.py",
            "tests/hardening/test_submit_states.py",
            "tests/hardening/test_gaps.py",
            "tests/hardening/test_cap_cancel_loops.py",
        ),
    ),
    # the journal: JobStore and the SQL of a job's life (SQLite; PostgreSQL runs the same SQL)
    "store": Group(
        mutate=("src/falkit/store/jobs.py", "src/falkit/store/job_ops.py"),
        tests=("tests/store", "tests/hardening/test_gaps.py"),
        args=("-k", "not postgresql"),
    ),
    # the one budget rule (spend cap, batch budgets)
    "budget": Group(
        mutate=("src/falkit/service/budget.py",),
        tests=(
            "tests/unit/test_budget.py",
            "tests/hardening/test_gaps.py",
            "tests/hardening/test_cap_cancel_loops.py",
            "tests/batch/test_budget.py",
        ),
    ),
}

KILLED = {"killed", "timeout", "caught by type check"}


def main(argv: list[str]) -> int:
    report_only = "--report" in argv
    names = [name for name in argv if name != "--report"] or list(GROUPS)
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        print(f"unknown group {unknown[0]!r}; groups: {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    report: list[str] = []
    started = time.monotonic()
    for name in names:
        copy = WORK / name
        took = 0.0 if report_only else run_group(name, GROUPS[name], copy)
        for module in GROUPS[name].mutate:
            counts, missed = results(copy, module)
            rows.append({"group": name, "module": module, "seconds": round(took), **counts})
            report += describe(copy, module, counts, missed)
    total = time.monotonic() - started
    (OUT / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    (OUT / "report.md").write_text(
        f"# Mutation run ({time.strftime('%Y-%m-%d %H:%M')}, {total / 60:.1f} min)\n\n"
        + table(rows)
        + "\n"
        + "\n".join(report)
    )
    print(table(rows))
    print(f"{total / 60:.1f} min in all; every mutant not killed: {OUT / 'report.md'}")
    low = [row for row in rows if float(str(row["score"])) < MINIMUM]
    for row in low:
        print(f"{row['module']}: {row['score']} % killed, under {MINIMUM:g} %", file=sys.stderr)
    return 1 if low else 0


def run_group(name: str, group: Group, copy: Path) -> float:
    """Copy the tree, configure mutmut for the group, run it; the seconds it took."""
    copy.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(copy / "mutants", ignore_errors=True)  # mutmut would keep old verdicts
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    paths = [f"{ROOT}/", f"{copy}/"]
    subprocess.run(
        ["rsync", "-a", "--delete", "--exclude", "/mutants", "--from0", "--files-from=-", *paths],
        input=files,
        check=True,
    )
    configure(copy / "pyproject.toml", group)
    venv = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{venv}{os.pathsep}{os.environ.get('PATH', '')}",
        # A test's child process (the CLI in a subprocess) imports the copy's own unmutated
        # source, not the working tree's (others may be editing it). mutmut's trampolines
        # cannot run in a child (they need mutmut's state), so only in-process tests kill.
        "PYTHONPATH": str(copy / "src"),
    }
    env.pop("CI", None)  # PostgreSQL is not needed here: the store group runs on SQLite
    print(f"== {name}: mutmut over {', '.join(group.mutate)}", flush=True)
    started = time.monotonic()
    log = OUT / f"{name}.log"
    with log.open("w") as out:
        try:
            done = subprocess.run(
                ["nice", "-n", "10", str(venv / "mutmut"), "run", "--max-children", "1"],
                cwd=copy,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=BOUND,
                check=False,
            )
            if done.returncode != 0:
                print(f"   mutmut failed ({done.returncode}): see the log", flush=True)
        except subprocess.TimeoutExpired:
            print(f"   stopped after {BOUND:g} s: the figures are partial", flush=True)
    took = time.monotonic() - started
    print(f"   {took / 60:.1f} min (log: {log})", flush=True)
    return took


def configure(pyproject: Path, group: Group) -> None:
    """The copy's [tool.mutmut]: pyproject's, with the group's files and tests."""
    text = pyproject.read_text()
    base = tomllib.loads(text).get("tool", {}).get("mutmut", {})
    settings = {
        **base,
        "only_mutate": list(group.mutate),
        "pytest_add_cli_args_test_selection": list(group.tests),
        "pytest_add_cli_args": [*base.get("pytest_add_cli_args", []), *group.args],
    }
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
    lines = [
        "",
        "[tool.mutmut]",
        *(f"{key} = {json.dumps(value)}" for key, value in settings.items()),
    ]
    pyproject.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")


def results(copy: Path, module: str) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """Counts by outcome for one module, its score, and the mutants not killed."""
    from mutmut.stats import status_by_exit_code

    meta = copy / "mutants" / f"{module}.meta"
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    outcome = {key: status_by_exit_code[code] for key, code in codes.items()}
    killed = sum(1 for status in outcome.values() if status in KILLED)
    total = len(outcome)
    counts: dict[str, object] = {
        "total": total,
        "killed": killed,
        "timeout": sum(1 for status in outcome.values() if status == "timeout"),
        "survived": sum(1 for status in outcome.values() if status == "survived"),
        "no tests": sum(1 for status in outcome.values() if status == "no tests"),
        "other": sum(
            1
            for status in outcome.values()
            if status not in KILLED and status not in ("survived", "no tests")
        ),
        "score": round(100 * killed / total, 1) if total else 0.0,
    }
    missed = sorted((key, status) for key, status in outcome.items() if status not in KILLED)
    return counts, missed


def describe(
    copy: Path, module: str, counts: dict[str, object], missed: list[tuple[str, str]]
) -> list[str]:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    lines = [f"## {module}: {counts['killed']}/{counts['total']} killed ({counts['score']} %)", ""]
    here = Path.cwd()
    os.chdir(copy)  # mutmut reads its index from ./mutants
    try:
        for key, status in missed:
            try:
                diff = get_diff_for_mutant(key, path=module)
            except Exception as exc:  # an index that does not match: say so, go on
                diff = f"(no diff: {exc!r})"
            body = [line for line in diff.splitlines() if not line.startswith(("---", "+++"))]
            lines += [f"### {key} ({status})", "", "```diff", *body, "```", ""]
    finally:
        os.chdir(here)
    return lines


def table(rows: list[dict[str, object]]) -> str:
    head = "| module | killed / total | score | survived | no tests | timeouts | group time |"
    out = [head, "|---|---|---|---|---|---|---|"]
    for row in rows:
        out.append(
            f"| {row['module']} | {row['killed']} / {row['total']} | {row['score']} % "
            f"| {row['survived']} | {row['no tests']} | {row['timeout']} "
            f"| {int(str(row['seconds'])) / 60:.1f} min |"
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
