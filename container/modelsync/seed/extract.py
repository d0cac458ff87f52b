"""Safe zip extraction: every entry is checked, and the whole tree is sized, before anything is written.

Refused: absolute paths (also `C:` style), `..` components, links whose target leaves the tree or
is a folder, link entries over 4 KiB, loops of links, device/fifo entries, duplicate entries, a
path that is both a file and a folder, and archives beyond the size or file-count bound. The central
directory is bounded in bytes and its entries counted before zipfile reads it (its end record may lie).

The bounds count what lands on disk: every file (links included: they are materialised as copies
of the file they lead to) and every folder (also the ones only implied by a path) counts against
`max_files`, and each costs at least one 4 KiB block against `max_bytes`. The sizes are the
declared ones; an entry whose header understates its size fails its CRC check while it is written.
Links to folders are refused rather than copied: a few of them can multiply a tree exponentially,
and refusing them means the plan below knows every file and byte before the first write. The
extracted tree holds only plain files and folders, so nothing later follows a link anywhere.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from modelsync.errors import ModelsyncError

CHUNK_SIZE = 1024 * 1024
BLOCK = 4096  # what an empty file or a folder costs on disk (ext4, XFS)
MAX_LINK_BYTES = 4096  # a link's body is its target path: PATH_MAX on Linux
DEFAULT_MAX_FILES = 10_000
# The central directory (APPNOTE 4.3.12): per entry a 46-byte header, then its name, extra field and
# comment, whose lengths are at bytes 28, 30 and 32. An entry of a tree that can be extracted here
# needs at most a PATH_MAX name and a few KiB of extra fields and comment.
CD_HEADER, CD_SIGNATURE = 46, b"PK\x01\x02"
MAX_CD_ENTRY_BYTES = CD_HEADER + 4096 + 2048
# The end record (zipfile._EndRecData): fields used, and what a zip64 end record and locator add.
_ECD_SIGNATURE, _ECD_ENTRIES_TOTAL, _ECD_SIZE, _ECD_LOCATION = 0, 4, 5, 9
_ZIP64_END, _ZIP64_RECORDS = b"PK\x06\x06", 56 + 20


class UnsafeArchive(ModelsyncError):
    """The archive is malformed or tries to write outside its tree."""


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]  # safe relative path components
    kind: str  # "dir", "file" or "link"
    link_target: tuple[str, ...] = ()  # for links: target path components, relative to the tree


@dataclass(frozen=True)
class _Plan:
    entries: list[_Entry]  # folders and files, in archive order
    copies: list[tuple[tuple[str, ...], tuple[str, ...]]]  # (link path, the file it leads to)


def extract_zip(archive: Path, dest: Path, *, max_bytes: int, max_files: int = DEFAULT_MAX_FILES) -> int:
    """Extract `archive` into the new directory `dest`; return the bytes written.

    On any problem `dest` is removed and UnsafeArchive (a ModelsyncError) is raised."""
    archive, dest = Path(archive), Path(dest)
    label = archive.name
    try:
        _check_central_directory(archive, label, max_files)
        with zipfile.ZipFile(archive) as zf:
            plan = _plan(zf, label, max_bytes=max_bytes, max_files=max_files)
            dest.mkdir(parents=True)
            try:
                written = _write(zf, plan.entries, dest, label)
                for link, source in plan.copies:
                    dest.joinpath(*link[:-1]).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(dest.joinpath(*source), dest.joinpath(*link))
                    written += dest.joinpath(*link).stat().st_size
            except BaseException:
                shutil.rmtree(dest, ignore_errors=True)
                raise
            return written
    except zipfile.BadZipFile as err:
        raise UnsafeArchive(f"{label}: not a valid zip archive ({err}); re-run the seed to download it again") from None
    except OSError as err:
        raise UnsafeArchive(f"{label}: cannot be extracted ({err.strerror or err}); check free disk space") from None


def _check_central_directory(archive: Path, label: str, max_files: int) -> None:
    """Refuse from the end record and a walk of the central directory's fixed headers, before zipfile
    reads the whole directory into memory and builds an object per entry: the end record may state one
    entry while the directory holds millions, so its size in bytes is bounded first, then its entries
    are counted (stopping one past the stated count) without reading their names."""
    end_record = getattr(zipfile, "_EndRecData", None)  # private, but in every CPython since 2.x
    if end_record is None:
        return
    with open(archive, "rb") as f:
        record = end_record(f)
        if not record:
            return  # not a zip: zipfile says so in its own words
        stated, size = record[_ECD_ENTRIES_TOTAL], record[_ECD_SIZE]
        if stated > max_files:
            _too_many(label, stated, max_files)
        if size > max_files * MAX_CD_ENTRY_BYTES:
            raise UnsafeArchive(
                f"{label}: its central directory is {size} bytes, more than {max_files} files and folders can "
                f"need ({MAX_CD_ENTRY_BYTES} bytes each at most); raise max_extracted_files for this catalog "
                "entry if the archive is trusted"
            )
        zip64 = _ZIP64_RECORDS if record[_ECD_SIGNATURE] == _ZIP64_END else 0
        start = record[_ECD_LOCATION] - zip64 - size
        if start < 0:
            return  # zipfile refuses it ("Bad offset for central directory")
        f.seek(start)
        count = 0
        while size >= CD_HEADER:
            header = f.read(CD_HEADER)
            if len(header) < CD_HEADER or header[:4] != CD_SIGNATURE:
                return  # malformed: zipfile refuses it
            count += 1
            if count > stated:
                break  # malformed: refused below, before reading on
            variable = sum(struct.unpack_from("<3H", header, 28))  # name, extra field and comment lengths
            f.seek(variable, os.SEEK_CUR)
            size -= CD_HEADER + variable
    if count != stated:
        holds = f"more than {stated}" if count > stated else str(count)
        raise UnsafeArchive(
            f"{label}: its end record states {stated} entries but its central directory holds {holds}; "
            "refusing a malformed archive: re-run the seed to download it again, then check the source"
        )


def _too_many(label: str, count: int, max_files: int):
    raise UnsafeArchive(
        f"{label}: holds {count} files and folders, more than the limit of {max_files}; "
        f"raise max_extracted_files for this catalog entry if the archive is trusted"
    )


def _plan(zf: zipfile.ZipFile, label: str, *, max_bytes: int, max_files: int) -> _Plan:
    infos = zf.infolist()
    if len(infos) > max_files:
        _too_many(label, len(infos), max_files)
    entries, links, seen = [], {}, set()
    for info in infos:
        parts = _safe_parts(info.filename, label)
        if not parts:
            continue  # the archive's root directory itself
        if parts in seen:
            raise UnsafeArchive(f"{label}: entry {info.filename!r} appears twice; refusing an ambiguous archive")
        seen.add(parts)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            target = _read_link(zf, info, label)
            links[parts] = _Entry(info, parts, "link", _link_target(parts, target, info.filename, label))
        elif info.is_dir() or stat.S_ISDIR(mode):
            entries.append(_Entry(info, parts, "dir"))
        elif stat.S_IFMT(mode) in (0, stat.S_IFREG):
            entries.append(_Entry(info, parts, "file"))
        else:
            raise UnsafeArchive(f"{label}: entry {info.filename!r} is a special file (mode {oct(mode)}); refusing it")
    files = {e.parts: e for e in entries if e.kind == "file"}
    folders = {e.parts for e in entries if e.kind == "dir"}
    folders.update(p[:i] for p in seen for i in range(1, len(p)))  # also the folders a path only implies
    clash = next((p for p in (*files, *links) if p in folders), None)
    if clash:
        raise UnsafeArchive(f"{label}: {'/'.join(clash)!r} is both a file and a folder; refusing an ambiguous archive")
    count = len(files) + len(links) + len(folders)
    if count > max_files:
        _too_many(label, count, max_files)
    done: dict = {}
    copies = [(link.parts, _resolve(link, links, files, folders, label, done)) for link in links.values()]
    plain = sum(max(e.info.file_size, BLOCK) for e in files.values()) + BLOCK * len(folders)
    copied = sum(max(files[source].info.file_size, BLOCK) for _link, source in copies)
    if plain + copied > max_bytes:
        of_links = f", {copied} of them for copies of its {len(copies)} links" if copies else ""
        raise UnsafeArchive(
            f"{label}: expands to {plain + copied} bytes on disk (each file and folder counts at least {BLOCK} bytes"
            f"{of_links}), more than the bound of {max_bytes} bytes; "
            f"raise max_extracted_mb for this catalog entry if the archive is trusted"
        )
    return _Plan(entries, copies)


def _read_link(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> str:
    """A link's target, refused by its declared size before a byte of it is read (and read bounded:
    zipfile stops at the declared size, then checks the CRC)."""
    if info.file_size > MAX_LINK_BYTES:
        raise UnsafeArchive(
            f"{label}: link {info.filename!r} is {info.file_size} bytes; a link is at most "
            f"{MAX_LINK_BYTES} bytes (a target path): refusing a malformed archive"
        )
    try:
        with zf.open(info) as src:
            return src.read(MAX_LINK_BYTES + 1).decode("utf-8", "replace")
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as err:
        raise UnsafeArchive(f"{label}: entry {info.filename!r} cannot be read ({err}); re-run the seed") from None


def _resolve(link: _Entry, links: dict, files: dict, folders: set, label: str, done: dict) -> tuple[str, ...]:
    """The file a link leads to, through chains of links (`done` remembers chains already followed)."""
    chain, current = {}, link  # a dict: ordered, and a fast membership test
    while current.parts not in done:
        chain[current.parts] = True
        target = current.link_target
        if target in files or target in done:
            break
        if target in folders:
            raise UnsafeArchive(
                f"{label}: link {current.info.filename!r} points to a folder ({'/'.join(target)!r}); links to folders "
                f"are refused (a few can multiply the files): re-pack the archive without links (zip -r without -y)"
            )
        if target not in links:
            raise UnsafeArchive(
                f"{label}: link {current.info.filename!r} points to nothing inside the archive "
                f"({'/'.join(target)!r}); check the source"
            )
        if target in chain:
            raise UnsafeArchive(f"{label}: link {link.info.filename!r} is part of a loop of links; check the source")
        current = links[target]
    end = done.get(current.parts) or done.get(current.link_target) or current.link_target
    done.update((parts, end) for parts in chain)
    return end


def _safe_parts(name: str, label: str) -> tuple[str, ...]:
    normalised = name.replace("\\", "/")  # archives made on Windows may use backslashes
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise UnsafeArchive(f"{label}: entry {name!r} has an absolute path; refusing to extract an unsafe archive")
    parts = tuple(p for p in normalised.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchive(
            f"{label}: entry {name!r} escapes the archive tree with '..'; refusing to extract an unsafe archive"
        )
    if any("\x00" in p for p in parts):
        raise UnsafeArchive(f"{label}: entry {name!r} contains a NUL byte; refusing to extract an unsafe archive")
    return parts


def _link_target(parts: tuple[str, ...], target: str, name: str, label: str) -> tuple[str, ...]:
    target = target.replace("\\", "/")
    resolved = posixpath.normpath(posixpath.join(*parts[:-1], target)) if parts[:-1] else posixpath.normpath(target)
    if target.startswith("/") or resolved == ".." or resolved.startswith("../") or resolved == ".":
        raise UnsafeArchive(
            f"{label}: link {name!r} points outside the archive tree (-> {target!r}); "
            "refusing to extract an unsafe archive"
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
            raise UnsafeArchive(
                f"{label}: entry {entry.info.filename!r} cannot be read ({err}); re-run the seed"
            ) from None
        except OSError as err:
            raise UnsafeArchive(
                f"{label}: entry {entry.info.filename!r} cannot be written ({err.strerror or err}); "
                f"the archive has conflicting entries or the disk is full"
            ) from None
    return written


def tree_size(path: Path) -> int:
    """Bytes of a file, or of every file under a directory."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
