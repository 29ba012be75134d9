"""Property: whatever arguments, files and settings the CLI is given, it ends well.

Hypothesis throws generated argument lists, batch files (random bytes, deep nesting, huge
numbers, odd encodings, oversized CSV fields) and environment values at the real CLI, pointed at
an in-process emulator. Every run must exit 0, 1 or 2 without a traceback; exit 2 must send
nothing and say what is wrong in one line; exit 1 only when Fal (the emulator) answered. See
``cli_support.assert_well_behaved``. Examples are few and cheap so this runs in CI in well under
two minutes on a shared 2-core machine.
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from falkit.emulator import EmulatorServer
from tests.hardening.cli_support import assert_well_behaved, cli_env, emulator, invoke

__all__ = ["emulator"]

SETTINGS = settings(
    max_examples=int(os.environ.get("FALKIT_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---- values: what a hurried or hostile user types ----

# Past 4,300 digits Python refuses to convert a number at all; below, it is merely slow.
HUGE_DIGITS = st.one_of(st.integers(20, 100), st.integers(4301, 6000)).map(lambda n: "9" * n)
# Nesting past the bound, past the recursion limit, and far past it.
DEEP = st.sampled_from([33, 1_500, 100_000])

NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "0",
            "-0",
            "1e309",
            "nan",
            "inf",
            "-inf",
            "0x10",
            "1_000",
            "2**64",
            "10001",
            "99999999999999999999",
            "18446744073709551616",
            "-9223372036854775809",
        ]
    ),
    HUGE_DIGITS,
)
MODEL_IDS = st.one_of(
    st.sampled_from(
        ["flux-schnell", "flux-dev", "sdxl", "flux-lora-training", "fal-ai/flux/schnell"]
    ),
    st.sampled_from(
        ["fal-ai/../../admin", "fal-ai/%2e%2e/x", "a//b", "fal-ai/./flux", "/", "..", "a/b c",
         "fal-ai/flux?x=1", "fal-ai/flux#f", "fal-ai\\flux", "comfy/..", "1234-..", "x/y/%2F"]
    ),
    st.lists(
        st.text(alphabet=string.ascii_letters + "./%~-_ ", min_size=0, max_size=8),
        min_size=1, max_size=4,
    ).map("/".join),
)  # fmt: skip
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=40
)
PLAIN = st.text(alphabet=string.ascii_letters + string.digits + " .-", min_size=1, max_size=20)
VALUES = st.one_of(NUMBERS, MODEL_IDS, TEXT, st.sampled_from(["", " ", "-", "--", "-x"]))

GENERATE_OPTIONS: dict[str, Any] = {
    "--model": MODEL_IDS,
    "--size": st.one_of(st.sampled_from(["square", "1024x768", "0x0", "99999x1", "x"]), VALUES),
    "--steps": NUMBERS,
    "--guidance": NUMBERS,
    "--seed": NUMBERS,
    "--num-images": NUMBERS,
    "--format": st.one_of(st.sampled_from(["png", "jpeg", "gif"]), TEXT),
    "--lora": st.one_of(st.sampled_from(["https://x/w.safetensors:0.8", "TOK:9", ":"]), TEXT),
    "--timeout": NUMBERS,
    "-p": st.tuples(
        st.sampled_from(["seed", "extra", "num_inference_steps", "image_size", "loras", "x y"]),
        st.one_of(VALUES, DEEP.map(lambda n: "[" * n + "]" * (n % 3)), HUGE_DIGITS),
    ).map(lambda t: f"{t[0]}={t[1]}"),
}
BATCH_OPTIONS: dict[str, Any] = {
    "--seeds": st.one_of(NUMBERS, st.sampled_from(["1-4", "4-1", "0-99999999", "1,,2", "a-b"])),
    "--models": st.one_of(MODEL_IDS, st.just("flux-schnell,flux-dev")),
    "--guidance": st.one_of(NUMBERS, st.just("3,3.5")),
    "--sizes": st.one_of(st.sampled_from(["square", "1x1,2x2", ""]), TEXT),
    "--steps": NUMBERS,
    "--concurrency": NUMBERS,
    "--budget": NUMBERS,
}
FLAGS = st.sampled_from(["--dry-run", "--json"])


def _options(table: dict[str, Any]) -> st.SearchStrategy[list[str]]:
    pairs = st.lists(
        st.sampled_from(sorted(table)).flatmap(lambda name: table[name].map(lambda v: [name, v])),
        max_size=4,
    )
    return st.tuples(pairs, st.lists(FLAGS, max_size=2)).map(
        lambda t: [word for pair in t[0] for word in pair] + t[1]
    )


# ---- files: what ends up in a batch input ----

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)
REQUESTS = st.fixed_dictionaries(
    {"prompt": st.one_of(TEXT, st.just("a cat"))},
    optional={
        "seed": st.one_of(st.integers(min_value=-1, max_value=2**65), st.just(2**64)),
        "model": MODEL_IDS,
        "steps": st.integers(min_value=-5, max_value=60),
        "extra": JSON_VALUES,
    },
)


def _jsonl(line: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str]]:
    """A JSONL file: a good request line or two around the generated one."""
    good = st.just('{"prompt": "a cat", "steps": 1}')
    return st.lists(st.one_of(good, line), min_size=1, max_size=3).map(
        lambda lines: (".jsonl", "\n".join(lines))
    )


def _csv(cell: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str]]:
    header = st.sampled_from(["prompt,seed", "prompt,lora", "prompt,steps,size", "seed"])
    rows = st.lists(st.lists(st.one_of(PLAIN, cell), min_size=1, max_size=3), max_size=3)
    return st.tuples(header, rows).map(
        lambda t: (".csv", t[0] + "\n" + "\n".join(",".join(row) for row in t[1]))
    )


# One family of trouble per example, each as likely as the others, so that even a short run
# meets every family several times.
TEXT_FILES = st.one_of(
    _jsonl(REQUESTS.map(json.dumps)),
    _jsonl(JSON_VALUES.map(json.dumps)),
    _jsonl(DEEP.map(lambda n: '{"prompt": "x", "e": ' + "[" * n + "]" * n + "}")),
    _jsonl(HUGE_DIGITS.map(lambda d: '{"prompt": "x", "seed": ' + d + "}")),
    _jsonl(TEXT),
    _csv(st.integers(100_000, 200_000).map(lambda n: "c" * n)),  # around csv's field limit
    _csv(NUMBERS),
    _csv(TEXT),
    st.lists(st.one_of(TEXT, st.just("a cat")), max_size=3).map(lambda x: (".txt", "\n".join(x))),
)


@st.composite
def batch_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, bytes) of a batch input: one family of trouble, or plain noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([".txt", ".jsonl", ".csv"])), draw(st.binary(max_size=600))
    suffix, text = draw(TEXT_FILES)
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "latin-1", "utf-16", "cp1252"]))
    return suffix, text.encode(encoding, errors="replace")


def _write(tmp: Path, suffix: str, data: bytes, counter: list[int]) -> Path:
    counter.append(1)
    path = tmp / f"input-{len(counter)}{suffix}"
    path.write_bytes(data)
    return path


# ---- the properties ----


@SETTINGS
@given(prompt=st.one_of(TEXT, st.just("a cat")), options=_options(GENERATE_OPTIONS))
def test_generate_with_any_arguments(
    emulator: EmulatorServer, tmp_path: Path, prompt: str, options: list[str]
) -> None:
    outcome = invoke(emulator, ["generate", prompt, *options], cli_env(emulator, tmp_path / "h"))
    event(f"exit {outcome.code}, requests sent: {min(outcome.requests, 1)}")
    assert_well_behaved(outcome)


@SETTINGS
@given(file=batch_files(), options=_options(BATCH_OPTIONS))
def test_batch_with_any_file(
    emulator: EmulatorServer, tmp_path: Path, file: tuple[str, bytes], options: list[str]
) -> None:
    counter: list[int] = []
    path = _write(tmp_path, file[0], file[1], counter)
    outcome = invoke(emulator, ["batch", str(path), *options], cli_env(emulator, tmp_path / "h"))
    event(f"exit {outcome.code}, requests sent: {min(outcome.requests, 1)}")
    assert_well_behaved(outcome)


LONG_PATHS = st.integers(1, 900).map("x/".__mul__)  # past NAME_MAX or PATH_MAX
RAW_NUMBERS = ("--guidance", "--seed", "--steps")  # an uncatalogued model: no schema checks
OUT_TARGETS = st.sampled_from(["a-file", "a-file/x", "/proc/falkit-out", "/dev/null", "new/out"])
TARGETS: list[tuple[list[str], str, Any]] = [
    *((["generate", "a cat"], name, value) for name, value in GENERATE_OPTIONS.items()),
    (["generate", "a cat"], "--out", OUT_TARGETS),
    (["generate", "a cat"], "--lora", st.one_of(HUGE_DIGITS, LONG_PATHS)),
    *((["generate", "a cat", "--model", "someone/app"], name, NUMBERS) for name in RAW_NUMBERS),
    (["generate", "a cat"], "-p", st.sampled_from(["extra", "seed", "loras"]).map(lambda n: n + "=")
        .flatmap(lambda n: st.one_of(DEEP.map(lambda d: n + "[" * d), HUGE_DIGITS.map(n.__add__)))),
    *((["batch", "prompts.txt"], name, value) for name, value in BATCH_OPTIONS.items()),
    (["batch", "prompts.txt"], "--out", OUT_TARGETS),
    (["jobs", "list"], "--limit", NUMBERS),
    (["jobs", "list"], "--search", VALUES),
    (["batch", "list"], "--limit", NUMBERS),
    (["mcp"], "--wait-seconds", NUMBERS),
    (["mcp"], "--max-spend-usd", NUMBERS),
]  # fmt: skip
# One (command, option) pair, all equally likely, with one generated value; nothing else can
# fail first, so each option's own check is reached.
FOCUSED = st.sampled_from(range(len(TARGETS))).flatmap(
    lambda i: TARGETS[i][2].map(lambda value: [*TARGETS[i][0], TARGETS[i][1], value])
)


@settings(SETTINGS, max_examples=int(os.environ.get("FALKIT_FUZZ_EXAMPLES", "200")))
@given(args=FOCUSED)
def test_one_bad_value_among_good_ones(
    emulator: EmulatorServer, tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "prompts.txt").write_text("a cat\n")
    # `falkit mcp` serves stdio: with the runner's empty standard input it ends at once.
    outcome = invoke(emulator, args, cli_env(emulator, tmp_path / "h"))
    event(f"{args[0]} {args[-2]}: exit {outcome.code}")
    assert_well_behaved(outcome)


ENV_VALUES = st.one_of(
    TEXT.filter(lambda v: "://" not in v),  # a URL that works would send to another host
    st.sampled_from(["ftp://x", "http://", "http://h:99999", "https://a?b", "//x", "true", "1"]),
)
ENV_NAMES = st.sampled_from(
    ["FALKIT_QUEUE_URL", "FALKIT_RUN_URL", "FALKIT_REST_URL", "FALKIT_CDN_URL",
     "FALKIT_API_URL", "FALKIT_EMULATOR", "FALKIT_EMULATOR_LATENCY"]
)  # fmt: skip
COMMANDS = st.sampled_from(
    [["generate", "a cat"], ["generate", "a cat", "--emulator"], ["jobs", "list"],
     ["generate", "a cat", "--dry-run"], ["batch", "list", "--limit", "3"]]
)  # fmt: skip
LIMITS = st.tuples(st.sampled_from([["jobs", "list"], ["batch", "list"]]), NUMBERS).map(
    lambda t: [*t[0], "--limit", t[1]]
)


@settings(SETTINGS, max_examples=int(os.environ.get("FALKIT_FUZZ_EXAMPLES", "60")))
@given(
    env=st.dictionaries(ENV_NAMES, ENV_VALUES.map(lambda v: v.replace("\0", "")), max_size=2),
    args=st.one_of(COMMANDS, LIMITS),
)
def test_any_settings_and_limits(
    emulator: EmulatorServer, tmp_path: Path, env: dict[str, str], args: list[str]
) -> None:
    outcome = invoke(emulator, args, cli_env(emulator, tmp_path / "h", **env))
    event(f"exit {outcome.code}, requests sent: {min(outcome.requests, 1)}")
    assert_well_behaved(outcome)
