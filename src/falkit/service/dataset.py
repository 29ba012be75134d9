"""Training datasets: a folder or a zip of images, checked locally, then packed as one zip.

Every check runs here, before anything is uploaded: only jpg/jpeg/png/webp images that really
decode (Pillow), optional same-named ``.txt`` captions, at least ``MIN_IMAGES`` images, and for a
zip no member that could escape a folder (absolute paths, ``..``, symlinks). A zip is never
extracted: its members are decompressed a chunk at a time and counted, at most 2 GiB in all and
at most 20 times the archive's size on disk, so a zip bomb is refused by its headers or after a
few tens of megabytes. In a folder only regular files are opened (FIFOs, devices, sockets, link
loops are named, never read).
What is uploaded is a fresh, deterministic pack of exactly the files that were checked (sorted
names, fixed timestamps), so the same photos always give the same bytes.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from falkit.errors import ValidationError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CAPTION_SUFFIX = ".txt"
MIN_IMAGES = 4
MAX_TOTAL_BYTES = 2 * 1024**3
MAX_MEMBERS = 10_000
MAX_RATIO = 20
RATIO_SLACK = 1024**2
CHUNK_BYTES = 1024**2
NOT_USABLE = "not a jpg/jpeg/png/webp image or a .txt caption"
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


def load_path(path: Path, shown: str | None = None) -> Dataset:
    """The dataset in a local folder or .zip, after ``stat`` says which (nothing else is opened:
    a link loop, a FIFO or a device as the source is an error naming it)."""
    text = shown or str(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise problem(text, "is a symbolic link loop") from None
        if isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise ValidationError.field(
                "source", f"no such file or folder: {text}", ALLOWED
            ) from None
        raise problem(text, f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        return load_folder(path)
    if not stat.S_ISREG(mode):
        raise problem(text, f"is {special_kind(mode)}, not a folder or a .zip file")
    if path.suffix.lower() != ".zip":
        raise problem(text, "is not a folder or a .zip file")
    return load_zip(path)


def load_folder(folder: Path) -> Dataset:
    """Read and check every file directly inside a folder (subfolders are an error).

    Each entry is looked at with ``stat`` before it is opened: FIFOs, devices and sockets (a
    read would block or never end), symbolic link loops and broken links are named and never
    opened; files that are neither images nor captions are named without being read.
    """
    entries: dict[str, bytes] = {}
    bad: list[str] = []
    try:
        paths = sorted(folder.iterdir())
    except OSError as exc:
        raise problem(str(folder), f"cannot be read ({exc.strerror or exc})") from None
    total = 0
    for path in paths:
        if _ignored(path.name):
            continue
        trouble, info = _entry_problem(path)
        if trouble is not None or info is None:
            bad.append(trouble or path.name)
            continue
        if not _wanted(path.name):
            bad.append(f"{path.name} ({NOT_USABLE})")
            continue
        total += info.st_size
        if total > MAX_TOTAL_BYTES:
            raise problem(str(folder), f"holds more than {_gib(MAX_TOTAL_BYTES)} of images")
        try:
            entries[path.name] = _read_regular(path, info)
        except OSError as exc:
            bad.append(f"{path.name} (cannot be read: {exc.strerror or exc})")
    return check_entries(str(folder), entries, bad)


def _entry_problem(path: Path) -> tuple[str | None, os.stat_result | None]:
    """Why a folder entry cannot be a dataset file (or None), and its stat (links followed)."""
    name = path.name
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{name} (a symbolic link loop)", None
        if isinstance(exc, FileNotFoundError) and path.is_symlink():
            return f"{name} (a broken symbolic link)", None
        return f"{name} (cannot be read: {exc.strerror or exc})", None
    if stat.S_ISDIR(info.st_mode):
        return f"{name}/ (subfolders are not read; move its images up)", None
    if not stat.S_ISREG(info.st_mode):
        return f"{name} ({special_kind(info.st_mode)}, not a regular file)", None
    return None, info


def special_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((word for test, word in kinds if test(mode)), "a special file")


def _read_regular(path: Path, info: os.stat_result) -> bytes:
    """The bytes of the regular file ``info`` describes; never blocks on a swapped-in FIFO.

    Opened non-blocking and checked again on the open descriptor (the name could have been
    replaced since ``stat``), and read no further than the size ``stat`` gave.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as handle:
        now = os.fstat(handle.fileno())
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            raise OSError(errno.EINVAL, "it changed while being read")
        return handle.read(info.st_size)


def load_zip(path: Path) -> Dataset:
    """Read and check a zip without extracting it, member by member, in chunks.

    Unsafe members are refused before anything is read, and so is a member whose declared
    sizes give it away as a bomb. Decompressed bytes are then counted as they come, against the
    archive's real size on disk (headers can lie about a member's compressed size, the file
    cannot): past MAX_RATIO times it, or past MAX_TOTAL_BYTES, reading stops with an error
    naming the member.
    """
    source = str(path)
    try:
        archive = zipfile.ZipFile(path)
        meter = _Meter(source, path.stat().st_size)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise problem(source, f"not a readable zip archive ({exc})") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir() and not _ignored(i.filename)]
        if len(infos) > MAX_MEMBERS:
            raise problem(source, f"holds {len(infos)} files; at most {MAX_MEMBERS} are read")
        unsafe = [f"{i.filename!r} ({why})" for i in infos if (why := unsafe_member(i))]
        if unsafe:
            raise problem(source, "unsafe archive members: " + ", ".join(unsafe))
        declared = sum(i.file_size for i in infos)
        if declared > MAX_TOTAL_BYTES:
            raise problem(source, f"unpacks to {_gib(declared)}; the limit is 2 GiB")
        entries, bad = _read_members(archive, infos, meter)
    return check_entries(source, entries, bad)


@dataclass
class _Meter:
    """Decompressed bytes so far, against the limits: a ratio to the archive and a total."""

    source: str
    archive_bytes: int
    total: int = 0

    def check_declared(self, info: zipfile.ZipInfo) -> None:
        if info.file_size > MAX_RATIO * info.compress_size + RATIO_SLACK:
            raise self._bomb(info.filename, "its compressed size")

    def add(self, name: str, count: int) -> None:
        self.total += count
        if self.total > MAX_RATIO * self.archive_bytes + RATIO_SLACK:
            raise self._bomb(name, "the archive's size")
        if self.total > MAX_TOTAL_BYTES:
            raise problem(self.source, f"unpacks to more than {_gib(MAX_TOTAL_BYTES)} at {name}")

    def _bomb(self, name: str, what: str) -> ValidationError:
        message = f"{name} unpacks to more than {MAX_RATIO} times {what} (a zip bomb?)"
        return problem(self.source, message)


def _read_members(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], meter: _Meter
) -> tuple[dict[str, bytes], list[str]]:
    entries: dict[str, bytes] = {}
    bad: list[str] = []
    for info in infos:
        if not _wanted(info.filename):
            bad.append(f"{info.filename} ({NOT_USABLE})")
            continue
        meter.check_declared(info)
        try:
            entries[info.filename] = _read_member(archive, info, meter)
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as exc:
            bad.append(f"{info.filename} (cannot be read: {exc})")
    return entries, bad


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, meter: _Meter) -> bytes:
    """One member's bytes, decompressed a chunk at a time and metered as they come."""
    chunks: list[bytes] = []
    with archive.open(info) as member:
        while chunk := member.read(CHUNK_BYTES):
            meter.add(info.filename, len(chunk))
            chunks.append(chunk)
    return b"".join(chunks)


def _wanted(name: str) -> bool:
    """Whether a file is read at all: images and captions are; anything else is only named."""
    suffix = PurePosixPath(name).suffix.lower()
    return suffix in IMAGE_SUFFIXES or suffix == CAPTION_SUFFIX


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB"


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
            bad.append(f"{name} ({NOT_USABLE})")
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
