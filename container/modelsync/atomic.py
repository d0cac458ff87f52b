"""Small files written whole into a store: a unique temp file of the store (the same filesystem), renamed
into place, so a reader sees the old file or the new one, never a part."""

from __future__ import annotations

import contextlib
import os


def write_whole(store, path: str, data: bytes, *, durable: bool = True) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = store.new_temp_path()
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
