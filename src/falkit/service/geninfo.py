"""Generation parameters as AUTOMATIC1111 writes them, in images and out of them.

Every image falkit keeps carries, next to falkit's own record (``downloads.embed_metadata``),
the ``parameters`` text that AUTOMATIC1111, Forge, ComfyUI and image sites read::

    a red fox in snow <lora:me:0.8>
    Negative prompt: blurry
    Steps: 28, CFG scale: 3.5, Seed: 42, Size: 1024x768, Model: flux-dev

in a PNG ``tEXt`` chunk (``iTXt`` when the text is not Latin-1) or, in a JPEG, the EXIF
UserComment (``UNICODE`` and UTF-16, as A1111 writes it through piexif). Both are spliced in
without re-encoding the pixels. The other way, ``image_parameters`` reads falkit's record or
that text back out of an image (the web page's "drop an image on the form").
"""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

PARAMETERS_KEY = "parameters"
EXIF_IFD_POINTER = 0x8769
USER_COMMENT = 0x9286
UNICODE_PREFIX = b"UNICODE\x00"
MAX_EXIF_TEXT = (65535 - 2 - 6 - 44 - len(UNICODE_PREFIX)) // 2  # one APP1 segment
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_LORA_TAG = re.compile(r"<lora:([^:>]+):([-+]?\d*\.?\d+)>")
_NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?$")


# ---- writing ----


def lora_label(path: str) -> str:
    """How a LoRA is named in ``<lora:NAME:SCALE>``: a library name, or a URL's file stem."""
    if path.startswith(("https://", "http://")):
        stem = PurePosixPath(urlsplit(path).path).stem
        return stem or "lora"
    return path


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if any(c in text for c in ',:\n"') else text


def a1111_text(metadata: dict[str, Any], size: tuple[int, int] | None = None) -> str:
    """The ``parameters`` text for falkit's provenance record (``finish_image_job``'s)."""
    args = metadata.get("arguments") or {}
    prompt = str(metadata.get("prompt") or args.get("prompt") or "")
    loras = [item for item in args.get("loras") or [] if isinstance(item, dict)]
    tags = [f"<lora:{lora_label(str(i.get('path', '')))}:{i.get('scale', 1.0):g}>" for i in loras]
    lines = [" ".join([prompt, *tags]).strip()]
    if args.get("negative_prompt"):
        lines.append(f"Negative prompt: {args['negative_prompt']}")
    fields: list[tuple[str, Any]] = [
        ("Steps", args.get("num_inference_steps")),
        ("CFG scale", args.get("guidance_scale")),
        ("Seed", metadata.get("seed", args.get("seed"))),
        ("Size", f"{size[0]}x{size[1]}" if size else None),
        ("Model", metadata.get("model")),
        ("Endpoint", metadata.get("endpoint_id")),
        ("Version", "falkit"),
    ]
    lines.append(", ".join(f"{k}: {_quote(v)}" for k, v in fields if v not in (None, "")))
    return "\n".join(lines)


def png_with_parameters(data: bytes, text: str) -> bytes:
    """The PNG with a ``parameters`` chunk after IHDR: tEXt, or iTXt for non-Latin-1 text."""
    key = PARAMETERS_KEY.encode("latin-1")
    try:
        kind, body = b"tEXt", key + b"\0" + text.encode("latin-1")
    except UnicodeEncodeError:
        kind, body = b"iTXt", key + b"\0\0\0\0\0" + text.encode("utf-8")
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
    if data[12:16] != b"IHDR":
        raise ValueError("PNG does not start with IHDR")
    return data[:33] + chunk + data[33:]


def exif_user_comment(text: str) -> bytes:
    """An APP1 Exif segment holding only the UserComment (big-endian TIFF, as piexif)."""
    comment = UNICODE_PREFIX + text[:MAX_EXIF_TEXT].encode("utf-16-be")
    exif_ifd = 8 + 2 + 12 + 4
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
    tiff += struct.pack(">HHHII", 1, EXIF_IFD_POINTER, 4, 1, exif_ifd) + struct.pack(">I", 0)
    data_at = exif_ifd + 2 + 12 + 4
    tiff += struct.pack(">HHHII", 1, USER_COMMENT, 7, len(comment), data_at) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff + comment
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of the segments before the image data (SOS)."""
    out, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xDA:  # start of scan: pixels follow
            break
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        out.append((marker, at, at + 2 + length))
        at += 2 + length
    return out


def jpeg_with_parameters(data: bytes, text: str) -> bytes:
    """The JPEG with an EXIF UserComment, after SOI and a JFIF APP0 (if any); a JPEG that
    has EXIF already is returned as it is (its own EXIF is not replaced)."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("JPEG does not start with SOI")
    segments = _jpeg_segments(data)
    if any(m == 0xE1 and data[s + 4 : s + 10] == b"Exif\x00\x00" for m, s, _ in segments):
        return data
    at = 2
    for marker, _, end in segments:
        if marker != 0xE0:
            break
        at = end
    return data[:at] + exif_user_comment(text) + data[at:]


# ---- reading ----


def read_parameters_text(data: bytes) -> str | None:
    """The A1111 ``parameters`` text of an image (PNG text chunk or JPEG/WebP EXIF)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        text = img.info.get(PARAMETERS_KEY)
        if isinstance(text, str) and text.strip():
            return text
        raw = img.getexif().get_ifd(EXIF_IFD_POINTER).get(USER_COMMENT)
    return decode_user_comment(raw) if isinstance(raw, bytes) else None


def decode_user_comment(raw: bytes) -> str | None:
    if raw.startswith(UNICODE_PREFIX):
        body = raw[len(UNICODE_PREFIX) :]
        # A1111 writes big-endian; a few tools wrote little-endian ASCII text
        little = len(body) > 1 and body[0] != 0 and body[1] == 0
        text = body.decode("utf-16-le" if little else "utf-16-be", "replace")
    elif raw.startswith(b"ASCII\x00\x00\x00"):
        text = raw[8:].decode("ascii", "replace")
    else:
        text = raw.decode("utf-8", "replace")
    text = text.strip("\x00").strip()
    return text or None


def parse_a1111(text: str) -> dict[str, Any]:
    """A1111 ``parameters`` text as falkit's parameters (Fal's names) and a model, if named.

    Unknown keys are kept under ``extra`` (shown, not sent); ``<lora:NAME:SCALE>`` tags leave
    the prompt and become ``loras``.
    """
    lines = text.strip().split("\n")
    last = lines[-1].strip() if lines else ""
    fields: dict[str, str] = {}
    if len(_PARAM.findall(last)) >= 3:
        fields = {k.strip(): _unquote(v) for k, v in _PARAM.findall(last)}
        lines = lines[:-1]
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative, line = True, line.removeprefix("Negative prompt:").strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    prompt = "\n".join(prompt_lines).strip()
    loras = [{"path": name, "scale": float(scale)} for name, scale in _LORA_TAG.findall(prompt)]
    out: dict[str, Any] = {"prompt": re.sub(r"\s+", " ", _LORA_TAG.sub("", prompt)).strip()}
    if negative_lines and "\n".join(negative_lines).strip():
        out["negative_prompt"] = "\n".join(negative_lines).strip()
    if loras:
        out["loras"] = loras
    out.update(_known_fields(fields))
    return out


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith('"') and value.endswith('"'):
        try:
            return str(json.loads(value))
        except ValueError:
            return value.strip('"')
    return value


def _known_fields(fields: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    numbers = {"Steps": ("num_inference_steps", int), "Seed": ("seed", int)}
    for key, (name, kind) in numbers.items():
        if _NUMBER.match(fields.get(key, "")):
            out[name] = kind(float(fields[key]))
    guidance = fields.get("Distilled CFG Scale") or fields.get("CFG scale", "")
    if _NUMBER.match(guidance):
        out["guidance_scale"] = float(guidance)
    size = re.match(r"^(\d+)x(\d+)$", fields.get("Size", ""))
    if size:
        out["image_size"] = {"width": int(size[1]), "height": int(size[2])}
    if fields.get("Model"):
        out["model"] = fields["Model"]
    used = {"Steps", "Seed", "CFG scale", "Distilled CFG Scale", "Size", "Model"}
    extra = {k: v for k, v in fields.items() if k not in used}
    if extra:
        out["extra"] = extra
    return out


def image_parameters(data: bytes) -> dict[str, Any] | None:
    """What an image says about how it was made: falkit's record (``source: falkit``) or the
    A1111 text (``source: a1111``); None when it says nothing. Raises ValueError for a file
    that is not an image."""
    from PIL import Image, UnidentifiedImageError

    from falkit.service.downloads import METADATA_KEY

    try:
        with Image.open(io.BytesIO(data)) as img:
            raw = img.info.get(METADATA_KEY) or img.info.get("comment")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not an image: {exc}") from None
    record = _falkit_record(raw)
    if record is not None:
        args = dict(record.get("arguments") or {})
        args.setdefault("prompt", record.get("prompt"))
        if record.get("seed") is not None:
            args["seed"] = record["seed"]
        return {"source": "falkit", "model": record.get("model"), **args}
    text = read_parameters_text(data)
    if text is None:
        return None
    return {"source": "a1111", "text": text, **parse_a1111(text)}


def _falkit_record(raw: Any) -> dict[str, Any] | None:
    from falkit.service.downloads import METADATA_KEY

    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str) or not raw.startswith(("{", f"{METADATA_KEY}:")):
        return None
    try:
        value = json.loads(raw.removeprefix(f"{METADATA_KEY}:"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
