"""The bounds in falkit.limits, table by table, and the input readers that apply them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from falkit.config import load_settings
from falkit.errors import ValidationError
from falkit.limits import (
    MAX_JSON_DEPTH,
    MAX_NUMBER_CHARS,
    InputRejected,
    endpoint_id_problem,
    json_too_deep,
    loads_bounded,
    non_finite_field,
    url_problem,
)
from falkit.service.batch_input import decode_input, parse_seeds, read_requests
from falkit.service.checks import check_out_dir


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, False),
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), True),
        ('{"prompt": "' + "[" * 500 + '"}', False),  # brackets inside a string do not nest
        ('{"prompt": "a \\" [[[[", "x": ' + "[" * 40 + "]" * 40 + "}", True),
        ("[]" * 10_000, False),  # many, but side by side
    ],
)
def test_json_depth(text: str, deep: bool) -> None:
    assert json_too_deep(text) is deep


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1" * (MAX_NUMBER_CHARS + 1), "too long"),
        ("[1." + "5" * 100 + "]", "too long"),
        ("[NaN]", "NaN is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        ('["\\udc80"]', "not text"),
        ("[" * 5000 + "]" * 5000, "nested more than"),
    ],
)
def test_loads_bounded_refuses(text: str, message: str) -> None:
    with pytest.raises(InputRejected, match=message):
        loads_bounded(text)


def test_loads_bounded_keeps_what_json_keeps() -> None:
    text = '{"prompt": "😀 \\ud83d\\ude00", "seed": 18446744073709551615, "g": 3.5, "l": [[]]}'
    assert loads_bounded(text) == json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        loads_bounded("{nope")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"guidance_scale": math.inf}, "guidance_scale"),
        ({"loras": [{"path": "x", "scale": math.nan}]}, "loras.0.scale"),
        ({"a": [1, 2.5, {"b": "inf"}]}, None),
    ],
)
def test_non_finite_numbers_are_named(value: object, field: str | None) -> None:
    assert non_finite_field(value) == field


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://queue.fal.run", True),
        ("http://127.0.0.1:8765/queue", True),
        ("http://[::1]:8765/cdn", True),
        ("queue.fal.run", False),
        ("ftp://queue.fal.run", False),
        ("https://", False),
        ("https://q.fal.run?x=1", False),
        ("https://q.fal.run#x", False),
        ("https://q.fal.run/ a", False),
        ("http://h:70000", False),
        ("", False),
    ],
)
def test_base_urls(url: str, ok: bool) -> None:
    assert (url_problem(url) is None) is ok


def test_settings_name_the_variable_and_hide_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_API_KEY", "secret-key-1234:abcd")
    monkeypatch.setenv("FALKIT_RUN_URL", "fal.run")
    monkeypatch.setenv("FALKIT_EMULATOR", "perhaps")
    with pytest.raises(ValidationError) as caught:
        load_settings()
    fields = [e.field for e in caught.value.errors]
    assert fields == ["FALKIT_RUN_URL", "FALKIT_EMULATOR"]
    assert "secret-key" not in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("endpoint_id", ["fal-ai/flux/dev", "a/b", "a/b/c/d.e~f_g-h"])
def test_good_endpoint_ids(endpoint_id: str) -> None:
    assert endpoint_id_problem(endpoint_id) is None


def test_decode_names_the_line_and_byte() -> None:
    with pytest.raises(ValidationError, match=r"line 3: x.txt is not UTF-8 text \(byte 0xff\)"):
        decode_input(b"a\nb\n\xff\n", "x.txt")
    assert decode_input("\ufeffa cat\n".encode()) == "a cat\n"


def test_seeds_from_python_are_bounded_without_turning_into_text() -> None:
    assert parse_seeds([0, 2**64 - 1]) == (0, 2**64 - 1)
    with pytest.raises(ValidationError, match="seeds"):
        parse_seeds([10**5000])  # str() of it would raise ValueError itself
    with pytest.raises(ValidationError, match="seeds"):
        parse_seeds("1-" + "9" * 5000)


def test_a_directory_is_not_a_batch_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a regular file"):
        read_requests(tmp_path)


def test_out_dir_checks_create_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert check_out_dir(target) == target
    assert not (tmp_path / "a").exists()
    assert list(tmp_path.iterdir()) == []  # the write probe left nothing behind
