"""Safe zip extraction: every entry is checked before anything is written.

Refused: absolute paths (also `C:` style), `..` components, links whose target leaves the tree,
device/fifo entries, duplicate entries, and archives that expand beyond a size bound (checked on
the declared sizes; an entry whose header understates its size fails its CRC check). Links that
stay inside the tree are materialised as copies, so the extracted tree holds only plain files and
directories and nothing later follows a link anywhere.
"""

from __future__ import annotations

import posixpath
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from modelsync.errors import ModelsyncError

CHUNK_SIZE = 1024 * 1024
DEFAULT_MAX_FILES = 100_000


class UnsafeArchive(ModelsyncError):
    """The archive is malformed or tries to write outside its tree."""


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]  # safe relative path components
    kind: str  # "dir", "file" or "link"
    link_target: tuple[str, ...] = ()  # for links: target path components, relative to the tree


def extract_zip(archive: Path, dest: Path, *, max_bytes: int, max_files: int = DEFAULT_MAX_FILES) -> int:
    """Extract `archive` into the new directory `dest`; return the bytes written.

    On any problem `dest` is removed and UnsafeArchive (a ModelsyncError) is raised."""
    archive, dest = Path(archive), Path(dest)
    label = archive.name
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = _plan(zf, label, max_bytes=max_bytes, max_files=max_files)
            dest.mkdir(parents=True)
            try:
                written = _write(zf, entries, dest, label)
                written = _materialise_links(
                    [e for e in entries if e.kind == "link"], dest, label, written=written, max_bytes=max_bytes
                )
            except BaseException:
                shutil.rmtree(dest, ignore_errors=True)
                raise
            return written
    except zipfile.BadZipFile as err:
        raise UnsafeArchive(f"{label}: not a valid zip archive ({err}); re-run the seed to download it again") from None


def _plan(zf: zipfile.ZipFile, label: str, *, max_bytes: int, max_files: int) -> list[_Entry]:
    infos = zf.infolist()
    if len(infos) > max_files:
        raise UnsafeArchive(f"{label}: {len(infos)} entries, more than the limit of {max_files}; refusing to extract")
    declared = sum(i.file_size for i in infos)
    if declared > max_bytes:
        raise UnsafeArchive(
            f"{label}: expands to {declared} bytes, more than the bound of {max_bytes}; "
            f"raise max_extracted_mb for this catalog entry if the archive is trusted"
        )
    entries, seen = [], set()
    for info in infos:
        parts = _safe_parts(info.filename, label)
        if not parts:
            continue  # the archive's root directory itself
        if parts in seen:
            raise UnsafeArchive(f"{label}: entry {info.filename!r} appears twice; refusing an ambiguous archive")
        seen.add(parts)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            target = zf.read(info).decode("utf-8", "replace")
            entries.append(_Entry(info, parts, "link", _link_target(parts, target, info.filename, label)))
        elif info.is_dir() or stat.S_ISDIR(mode):
            entries.append(_Entry(info, parts, "dir"))
        elif stat.S_IFMT(mode) in (0, stat.S_IFREG):
            entries.append(_Entry(info, parts, "file"))
        else:
            raise UnsafeArchive(f"{label}: entry {info.filename!r} is a special file (mode {oct(mode)}); refusing it")
    return entries


def _safe_parts(name: str, label: str) -> tuple[str, ...]:
    normalised = name.replace("\\", "/")  # archives made on Windows may use backslashes
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise UnsafeArchive(f"{label}: entry {name!r} has an absolute path; refusing to extract an unsafe archive")
    parts = tuple(p for p in normalised.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchive(f"{label}: entry {name!r} escapes the archive tree with '..'; refusing to extract an unsafe archive")
    if any("\x00" in p for p in parts):
        raise UnsafeArchive(f"{label}: entry {name!r} contains a NUL byte; refusing to extract an unsafe archive")
    return parts


def _link_target(parts: tuple[str, ...], target: str, name: str, label: str) -> tuple[str, ...]:
    target = target.replace("\\", "/")
    resolved = posixpath.normpath(posixpath.join(*parts[:-1], target)) if parts[:-1] else posixpath.normpath(target)
    if target.startswith("/") or resolved == ".." or resolved.startswith("../") or resolved == ".":
        raise UnsafeArchive(
            f"{label}: link {name!r} points outside the archive tree (-> {target!r}); refusing to extract an unsafe archive"
        )
    resolved_parts = tuple(resolved.split("/"))
    if parts[: len(resolved_parts)] == resolved_parts:
        raise UnsafeArchive(f"{label}: link {name!r} points to its own parent directory; refusing a recursive archive")
    return resolved_parts


def _write(zf: zipfile.ZipFile, entries: list[_Entry], dest: Path, label: str) -> int:
    written = 0
    for entry in entries:
        path = dest.joinpath(*entry.parts)
        try:
            if entry.kind == "dir":
                path.mkdir(parents=True, exist_ok=True)
            elif entry.kind == "file":
                path.parent.mkdir(parents=True, exist_ok=True)
                # "x": never follow or overwrite something already there.
                with zf.open(entry.info) as src, open(path, "xb") as out:
                    # zipfile stops at the declared size and then checks the CRC, so a header that
                    # understates the size fails here instead of writing past the bound.
                    while chunk := src.read(CHUNK_SIZE):
                        written += len(chunk)
                        out.write(chunk)
        except (zipfile.BadZipFile, EOFError, NotImplementedError) as err:
            raise UnsafeArchive(f"{label}: entry {entry.info.filename!r} cannot be read ({err}); re-run the seed") from None
        except OSError as err:
            raise UnsafeArchive(
                f"{label}: entry {entry.info.filename!r} cannot be written ({err.strerror or err}); "
                f"the archive has conflicting entries or the disk is full"
            ) from None
    return written


def _materialise_links(links: list[_Entry], dest: Path, label: str, *, written: int, max_bytes: int) -> int:
    """Replace in-tree links with copies of their targets (chains resolve over several passes);
    the copies count against the size bound. Returns the new byte total."""
    pending = list(links)
    while pending:
        still = []
        for link in pending:
            source, path = dest.joinpath(*link.link_target), dest.joinpath(*link.parts)
            if not source.exists():
                still.append(link)
                continue
            written += tree_size(source)
            if written > max_bytes:
                raise UnsafeArchive(f"{label}: its links expand beyond the bound of {max_bytes} bytes; refusing to extract")
            path.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, path)
            else:
                shutil.copyfile(source, path)
        if len(still) == len(pending):
            names = ", ".join(repr(link.info.filename) for link in still[:3])
            raise UnsafeArchive(f"{label}: link(s) {names} point to nothing inside the archive; check the source")
        pending = still
    return written


def tree_size(path: Path) -> int:
    """Bytes of a file, or of every file under a directory."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
