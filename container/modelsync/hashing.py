"""sha256 of files: streaming, and many files at once on all cores (hashlib releases the GIL)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from . import stop

READ_SIZE = 1024 * 1024


def sha256_file(path: str | os.PathLike, *, dir_fd: int | None = None, follow_symlinks: bool = True) -> str:
    """sha256 of a file; follow_symlinks=False refuses a link at path (ELOOP) instead of reading its target."""
    digest = hashlib.sha256()
    buffer = bytearray(READ_SIZE)
    view = memoryview(buffer)
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    with open(os.open(path, flags, dir_fd=dir_fd), "rb", buffering=0) as handle:
        while True:
            stop.check()
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
    return digest.hexdigest()


def sha256_many(
    paths: list[str],
    *,
    workers: int | None = None,
    follow_symlinks: bool = True,
    opened: Callable[[str], tuple[str, int]] | None = None,
) -> dict[str, str | OSError]:
    """Path -> hex digest (or the OSError that prevented reading it), biggest files first. opened: each path's
    (name, directory descriptor) to open it by instead, never through a link (a tree opened without links)."""
    workers = workers or os.cpu_count() or 1
    ordered = sorted(paths, key=_size_or_zero, reverse=True)

    def one(path):
        try:
            if opened is not None:
                name, dir_fd = opened(path)
                return path, sha256_file(name, dir_fd=dir_fd, follow_symlinks=False)
            return path, sha256_file(path, follow_symlinks=follow_symlinks)
        except OSError as exc:
            return path, exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, ordered))


def _size_or_zero(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
