"""Training datasets: a folder or a zip of images, checked locally, then packed as one zip.

Every check runs here, before anything is uploaded: only jpg/jpeg/png/webp images that really
decode (Pillow), optional same-named ``.txt`` captions, at least ``MIN_IMAGES`` images, and for a
zip no member that could escape a folder (absolute paths, ``..``, symlinks). A zip is read in
memory and never extracted. What is uploaded is a fresh, deterministic pack of exactly the files
that were checked (sorted names, fixed timestamps), so the same photos always give the same bytes.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from falkit.errors import ValidationError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CAPTION_SUFFIX = ".txt"
MIN_IMAGES = 4
MAX_TOTAL_BYTES = 2 * 1024**3
PIL_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP"})  # MPO: multi-picture JPEGs from phones
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
ALLOWED = (
    "a folder or .zip of at least 4 jpg/jpeg/png/webp images, optional same-named .txt captions"
)


@dataclass(frozen=True)
class Dataset:
    """Checked training files: image and caption bytes by their name inside the archive."""

    source: str
    images: tuple[str, ...]
    captions: dict[str, str] = field(default_factory=dict)  # image name -> caption text
    files: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def all_captioned(self) -> bool:
        return all(name in self.captions for name in self.images)

    @property
    def size_bytes(self) -> int:
        return sum(len(data) for data in self.files.values())

    def pack(self) -> bytes:
        """The files as a deterministic zip: sorted names, fixed timestamps and permissions."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name in sorted(self.files):
                info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                text = name.endswith(CAPTION_SUFFIX)
                info.compress_type = zipfile.ZIP_DEFLATED if text else zipfile.ZIP_STORED
                archive.writestr(info, self.files[name])
        return buffer.getvalue()


def problem(source: str, message: str) -> ValidationError:
    """A dataset error naming the source, what is wrong and what is accepted."""
    return ValidationError.field("source", f"{source}: {message}", ALLOWED)


def load_folder(folder: Path) -> Dataset:
    """Read and check every file directly inside a folder (subfolders are an error)."""
    entries: dict[str, bytes] = {}
    bad: list[str] = []
    try:
        paths = sorted(folder.iterdir())
    except OSError as exc:
        raise problem(str(folder), f"cannot be read ({exc.strerror or exc})") from None
    for path in paths:
        if _ignored(path.name):
            continue
        if path.is_dir():
            bad.append(f"{path.name}/ (subfolders are not read; move its images up)")
            continue
        try:
            entries[path.name] = path.read_bytes()
        except OSError as exc:
            bad.append(f"{path.name} (cannot be read: {exc.strerror or exc})")
    return check_entries(str(folder), entries, bad)


def load_zip(path: Path) -> Dataset:
    """Read and check a zip in memory; unsafe members are refused before anything is read."""
    source = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise problem(source, f"not a readable zip archive ({exc})") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir() and not _ignored(i.filename)]
        unsafe = [f"{i.filename!r} ({why})" for i in infos if (why := unsafe_member(i))]
        if unsafe:
            raise problem(source, "unsafe archive members: " + ", ".join(unsafe))
        total = sum(i.file_size for i in infos)
        if total > MAX_TOTAL_BYTES:
            raise problem(source, f"unpacks to {total / 1024**3:.1f} GiB; the limit is 2 GiB")
        entries: dict[str, bytes] = {}
        bad: list[str] = []
        for info in infos:
            try:
                entries[info.filename] = archive.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                bad.append(f"{info.filename} (cannot be read: {exc})")
    return check_entries(source, entries, bad)


def unsafe_member(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member could write outside a folder if extracted, or None if it is safe."""
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "a path leading outside the archive"
    if info.flag_bits & 0x1:
        return "encrypted"
    return None


def check_entries(source: str, entries: dict[str, bytes], bad: list[str]) -> Dataset:
    """Sort entries into images and captions; every problem is reported at once."""
    images: list[str] = []
    captions: dict[str, str] = {}
    caption_files: dict[str, str] = {}
    for name, data in entries.items():
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            trouble = image_problem(data)
            if trouble:
                bad.append(f"{name} ({trouble})")
            else:
                images.append(name)
        elif suffix == CAPTION_SUFFIX:
            try:
                caption_files[_stem(name)] = data.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(f"{name} (a caption must be UTF-8 text)")
        else:
            bad.append(f"{name} (not a jpg/jpeg/png/webp image or a .txt caption)")
    stems = {_stem(n) for n in images}
    bad.extend(
        f"{stem}.txt (a caption with no image of the same name)"
        for stem in sorted(caption_files)
        if stem not in stems and not _broken_image(stem, bad)
    )
    if bad:
        raise problem(source, "these files cannot be used: " + "; ".join(sorted(bad)))
    if len(images) < MIN_IMAGES:
        found = "no images" if not images else f"only {len(images)} image(s)"
        raise problem(source, f"{found}; at least {MIN_IMAGES} are needed")
    for name in images:
        text = caption_files.get(_stem(name), "").strip()
        if text:
            captions[name] = text
    return Dataset(source, tuple(sorted(images)), captions, entries)


def image_problem(data: bytes) -> str | None:
    """Why bytes are not a usable training image (decoded with Pillow), or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in PIL_FORMATS:
                return f"{img.format} data, not jpg/png/webp"
            img.draft("RGB", (256, 256))  # JPEGs decode at a reduced scale: fast, still complete
            img.load()
    except Exception as exc:  # Pillow raises many types for bad data; all mean "unusable"
        return f"not a readable image: {exc}"
    return None


def _stem(name: str) -> str:
    path = PurePosixPath(name)
    return str(path.with_suffix("")) if path.suffix else name


def _broken_image(stem: str, bad: list[str]) -> bool:
    """True when the caption's image exists but was already reported as unreadable."""
    return any(entry.startswith(stem + ".") for entry in bad)


def _ignored(name: str) -> bool:
    """Operating-system litter that is never part of a dataset."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return name.startswith("__MACOSX/") or base.startswith(".") or base.lower() in IGNORED_NAMES
