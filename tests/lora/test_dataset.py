"""Dataset checks on real folders and zips: what is accepted, what is refused and why."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from falkit.errors import ValidationError
from falkit.service.dataset import MIN_IMAGES, load_folder, load_zip
from falkit.service.loras import safetensors_header
from tests.lora.helpers import image_bytes, make_folder, make_zip, safetensors_bytes


def test_folder_of_mixed_formats_with_captions(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "d", 2, captions=2)
    make_folder(folder, 0)
    (folder / "p.png").write_bytes(image_bytes(7, "PNG"))
    (folder / "w.WEBP").write_bytes(image_bytes(8, "WEBP"))
    (folder / ".DS_Store").write_bytes(b"\0junk")
    data = load_folder(folder)
    assert data.images == ("img00.jpg", "img01.jpg", "p.png", "w.WEBP")
    assert data.captions == {
        "img00.jpg": "a photo of [trigger] number 0",
        "img01.jpg": "a photo of [trigger] number 1",
    }
    assert not data.all_captioned
    assert ".DS_Store" not in data.files


def test_pack_is_deterministic_and_contains_exactly_the_checked_files(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "d", 4, captions=4)
    first = load_folder(folder).pack()
    for path in folder.iterdir():  # new mtimes must not change the bytes
        path.touch()
    assert load_folder(folder).pack() == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert archive.read("img03.jpg") == (folder / "img03.jpg").read_bytes()
    assert load_folder(folder).all_captioned


@pytest.mark.parametrize("count", [0, 2])
def test_too_few_images(tmp_path: Path, count: int) -> None:
    folder = make_folder(tmp_path / "d", count)
    with pytest.raises(ValidationError) as caught:
        load_folder(folder)
    message = str(caught.value)
    assert "no images" in message if count == 0 else f"only {count} image(s)" in message
    assert f"at least {MIN_IMAGES}" in message
    assert caught.value.errors[0].field == "source"


def test_text_file_renamed_jpg_and_other_files_are_named(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "d", 5)
    (folder / "fake.jpg").write_text("this is not a picture")
    (folder / "notes.pdf").write_bytes(b"%PDF-1.4")
    (folder / "truncated.png").write_bytes(image_bytes(3, "PNG")[:60])
    (folder / "lonely.txt").write_text("a caption without an image")
    (folder / "sub").mkdir()
    with pytest.raises(ValidationError) as caught:
        load_folder(folder)
    message = str(caught.value)
    for name in ("fake.jpg", "notes.pdf", "truncated.png", "lonely.txt", "sub/"):
        assert name in message
    assert "img00.jpg" not in message


def test_an_image_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "d", 4)
    (folder / "sneaky.png").write_bytes(image_bytes(9, "GIF"))
    with pytest.raises(ValidationError, match=r"sneaky\.png \(GIF data"):
        load_folder(folder)


def test_zip_with_nested_folder_is_read_in_memory(tmp_path: Path) -> None:
    members = {f"set/{i}.jpg": image_bytes(i) for i in range(4)}
    members["set/0.txt"] = b"caption zero"
    members["__MACOSX/set/._0.jpg"] = b"resource fork"
    path = make_zip(tmp_path / "d.zip", members)
    before = set(tmp_path.iterdir())
    data = load_zip(path)
    assert data.images == ("set/0.jpg", "set/1.jpg", "set/2.jpg", "set/3.jpg")
    assert data.captions == {"set/0.jpg": "caption zero"}
    assert set(tmp_path.iterdir()) == before  # nothing extracted


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("../evil.jpg", "a path leading outside the archive"),
        ("ok/../../evil.jpg", "a path leading outside the archive"),
        ("/etc/evil.jpg", "an absolute path"),
        ("C:/evil.jpg", "an absolute path"),
    ],
)
def test_zip_path_tricks_are_refused(tmp_path: Path, member: str, why: str) -> None:
    members = {f"{i}.jpg": image_bytes(i) for i in range(4)}
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        info = zipfile.ZipInfo("placeholder")
        info.filename = member  # ZipInfo normalises names; set the raw one as an attacker would
        archive.writestr(info, image_bytes(9))
    with pytest.raises(ValidationError) as caught:
        load_zip(path)
    assert "unsafe archive members" in str(caught.value)
    assert member in str(caught.value)
    assert why in str(caught.value)


def test_zip_symlink_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(4):
            archive.writestr(f"{i}.jpg", image_bytes(i))
        link = zipfile.ZipInfo("link.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(ValidationError, match=r"'link\.jpg' \(a symbolic link\)"):
        load_zip(path)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "d.zip"
    path.write_text("plain text")
    with pytest.raises(ValidationError, match="not a readable zip archive"):
        load_zip(path)


def test_safetensors_header_of_a_good_file(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    good.write_bytes(safetensors_bytes())
    assert safetensors_header(good)["lora.weight"]["shape"] == [2, 2]


@pytest.mark.parametrize(
    "data",
    [
        b"\x01\x02",
        (10**9).to_bytes(8, "little") + b"{}",
        (4).to_bytes(8, "little") + b"abcd",
        (2).to_bytes(8, "little") + b"{}",
        safetensors_bytes()[:-8],
    ],
    ids=["short", "huge_length", "not_json", "no_tensors", "offsets_past_end"],
)
def test_safetensors_header_refuses(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"\w"):
        safetensors_header(path)
