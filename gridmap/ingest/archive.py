"""Unpacking an uploaded or handed-over ``.zip`` safely: no member may land outside the
folder it is unpacked into (zip slip), its size is capped before anything is written
(zip bombs), CRCs are verified, and member names are decoded as their makers wrote them
(Chinese Windows writes GBK, Info-ZIP and macOS UTF-8 without saying so)."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from gridmap.errors import InvalidInputError


def is_zip(path: Path) -> bool:
    """Whether ``path`` is a zip file (by suffix or by content)."""
    return path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path))


def unpack(path: Path, into: Path, max_bytes: int) -> Path:
    """Extract a zip safely: no member may escape ``into``; CRCs are verified."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            names = [_member_name(info) for info in members]
            for name in names:
                _refuse_escape(path, name)  # the names extraction will use
            total = sum(info.file_size for info in members)
            if total > max_bytes:
                raise InvalidInputError(
                    f"{path.name}: unpacks to {total:,} bytes, over the limit of {max_bytes:,}",
                    details=[{"file": path.name, "problem": "too_large"}],
                )
            broken = archive.testzip()
            if broken is not None:
                raise InvalidInputError(f"{path.name}: member {broken} is corrupt (bad CRC)")
            for info, name in zip(members, names, strict=True):
                info.filename = name  # after testzip, which looks members up by name
            archive.extractall(into, members)  # ZipInfos: extracted under their names
    except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as exc:
        raise InvalidInputError(
            f"{path.name}: not a readable zip file ({exc}); is it truncated?",
            details=[{"file": path.name, "problem": "corrupt_zip"}],
        ) from None
    return into


_UTF8_NAME = 0x800
"""Zip general-purpose flag bit 11: the member name is UTF-8."""


def _member_name(info: zipfile.ZipInfo) -> str:
    """A member's name as its maker wrote it. Without the UTF-8 flag, zipfile decodes
    names as CP437, the zip standard's default, but no one in China writes that:
    Info-ZIP and macOS write UTF-8 bytes without the flag, the Windows Explorer writes
    the ANSI code page (GBK on Chinese Windows). Non-ASCII names are tried as UTF-8
    first (GBK bytes are rarely valid UTF-8, the reverse is common), then GBK, and
    left as CP437 when neither fits. ASCII bytes decode alike in all three, so
    ``/``, ``\\`` and ``..`` are where they were."""
    name = info.filename
    if info.flag_bits & _UTF8_NAME or name.isascii():
        return name
    raw = name.encode("cp437")
    for encoding in ("utf-8", "gbk"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return name


def _refuse_escape(archive: Path, member: str) -> None:
    pure = PurePosixPath(member.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (member[1:3] == ":\\"):
        raise InvalidInputError(
            f"{archive.name}: member {member!r} points outside the upload folder (zip slip)",
            details=[{"file": archive.name, "member": member, "problem": "zip_slip"}],
        )
