"""The bucket store: the S3 Files tree that mounts the models bucket's prefix, read-only (docs/runtime.md,
"Bucket store (S3 Files mode)").

    <root>/<name>/LATEST                       the signed LATEST, the same bytes as the object
    <root>/<name>/<version>/manifest.json      and manifest.json.sig, model.sig (OMS bundle, maybe absent)
    <root>/<name>/<version>/files/<path>       the version's files
    <root>/<name>/STAGED                       a staging pointer (not read here)

It is an objects.Objects with the prefix '' (the mount's root is the bucket's prefix), so the readers and
trust checks of the S3 path read it unchanged. Nothing here writes. Every path is opened one component at
a time from the root without following links (storefs.TreeDir): a link anywhere in the tree is refused,
never followed out of the mount. Owners and modes are the file system's, not checked.
"""

from __future__ import annotations

import os

from .config import NAME_RE
from .manifest import file_key, latest_key
from .objects import too_big
from .storefs import Dir, Subdirs, TreeDir, TreeRefused, regular_files

FILES = "files"


class BucketStore:
    """The tree at root; repository: the s3://BUCKET/PREFIX a LATEST statement must name (None: unchecked)."""

    prefix = ""  # the mount's root is the bucket's prefix

    def __init__(self, root: str | os.PathLike, repository: str | None = None):
        self.dest = os.path.abspath(os.fspath(root))
        self._repository = repository

    @property
    def repository(self) -> str | None:
        return self._repository

    def where(self, key: str) -> str:
        return os.path.join(self.dest, *key.split("/"))

    def files_dir(self, name: str, version: str) -> str:
        """The absolute path of name@version's files/ (what the views link into)."""
        return self.where(file_key(self.prefix, name, version, "")).rstrip("/")

    # objects.Objects ---------------------------------------------------------------------------
    def read(self, key: str, *, max_bytes: int, what: str) -> bytes | None:
        folder, _, filename = key.rpartition("/")
        try:
            with self._open_dir(folder) as parent:
                body = parent.read(filename, max_bytes + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if body is not None and len(body) > max_bytes:
            raise too_big(self.where(key), max_bytes, what)
        return body

    # The tree ----------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        """Names of the models in the tree that have a LATEST (staged-only ones have none yet)."""
        try:
            with TreeDir.root(self.dest) as root:
                names = sorted(e.name for e in root.entries() if NAME_RE.fullmatch(e.name))
        except FileNotFoundError:
            return []
        return [name for name in names if os.path.lexists(self.where(latest_key(self.prefix, name)))]

    def scan_files(self, name: str, version: str) -> dict[str, os.stat_result]:
        """lstat of every regular file under name@version's files/, by its path there ({} when there is no such
        directory). A link or a special file anywhere in it: TreeRefused."""
        try:
            files = self.open_files(name, version)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        try:
            return regular_files(files.root)
        finally:
            files.close()

    def open_files(self, name: str, version: str) -> Subdirs:
        """name@version's files/ opened without links, for reading files by their path (hashing.sha256_file with
        the Slot's dir_fd); FileNotFoundError when it is not there. Close it when done."""
        return Subdirs(self._open_dir(file_key(self.prefix, name, version, "")), create=False)

    def _open_dir(self, relpath: str) -> Dir:
        current: Dir = TreeDir.root(self.dest)
        try:
            for part in [p for p in relpath.split("/") if p]:
                parent, current = current, current.sub(part)
                parent.close()
        except BaseException:
            current.close()
            raise
        return current


__all__ = ["BucketStore", "TreeRefused"]
