"""`view`: a directory of links to verified version directories, arranged by a layout (layouts.py),
so an app finds its models where it looks (MaskTerial's data/models, a PaddleX cache home, ...).

    <view>/<top>                       -> .modelsync-view/current/<top>   (relative links, ours)
    <view>/.modelsync-view/current     -> <generation>                    (switched by one rename)
    <view>/.modelsync-view/<generation>/<path>  -> <dest>/.modelsync/versions/<name>/<version>[/<source>]
    <view>/.modelsync-view/<generation>.json    what that generation links (layout, models, links)
    <view>/.modelsync-view/lock                 flock: one builder at a time

Targets are absolute paths of version directories, resolved when the view is built, so switching
<dest>/<name> later (a seed moving the EFS mirror to LATEST) never changes what a view shows; the
app must mount <dest> at the same path as the builder. A refresh builds a new generation beside
the current one and renames `current` over it: every lookup through a top-level entry sees one
generation whole. Generation directories are read-only (0555) so an app cannot write into them
(what it writes at the top of a writable view is never touched); the previous generation is kept
until the next refresh so a reader that resolved a path just before a switch can finish.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .config import parse_model_spec
from .errors import JobFailed, ModelsyncError
from .layouts import Layout, LayoutError, Placement, check_collisions
from .store import LocalStore, fsync_dir

if TYPE_CHECKING:
    from .bucket_store import BucketStore
    from .manifest import Manifest

VIEW_META = ".modelsync-view"
CURRENT = "current"
GENERATION_PREFIX = "gen-"
WRITABLE_VIEW_MODE = 0o1777  # like /tmp: any uid may create entries, only the owner removes them


@dataclass
class ViewResult:
    view: str
    layout: str
    generation: str
    models: list[str]  # name@version, as linked
    links: dict[str, str]  # path in the view -> absolute target
    changed: bool  # False: the view already showed exactly this
    removed: list[str] = field(default_factory=list)  # stale top-level entries removed
    seconds: float = 0.0  # how long building (or finding unchanged) the view took


def build_view(
    view_dir, dest, layout: Layout, models: list[str] | None = None, *, source: Source | None = None
) -> ViewResult:
    """Build or refresh the view at view_dir from the store at dest. models: "NAME" (the version
    <dest>/NAME links to now) or "NAME@VERSION" (recorded in dest); None = every installed model.
    source: what the links point into, default the local store's version directories (LocalVersions);
    ManifestFiles for the bucket tree.

    LayoutError (exit 2) for a model the layout cannot place; JobFailed (exit 1) for a model not
    in the store. Nothing in the view changes unless the new generation is complete."""
    started = time.monotonic()
    source = source if source is not None else LocalVersions(LocalStore(dest))
    view = os.path.abspath(os.fspath(view_dir))
    if source.holds(view):
        raise ModelsyncError(
            f"the view {view} would be inside the model root {source.dest}: give the view "
            "its own directory (--view / MODELSYNC_VIEW)"
        )
    specs = _specs(source, models)
    layout.check([name for name, _ in specs])
    chosen = [(name, source.version(name, version)) for name, version in specs]
    links = _links(source, layout, chosen)
    _prepare(view, layout)
    meta = os.path.join(view, VIEW_META)
    with _locked(meta):
        old = _current_generation(meta)
        tops = sorted({path.split("/", 1)[0] for path in links})
        _check_tops_free(view, tops)
        labels = [f"{name}@{version}" for name, version in chosen]
        before = _record(meta, old) if old and os.path.isdir(os.path.join(meta, old)) else {}
        if old is not None and before.get("links") == links and before.get("models") == labels:
            generation, changed, keep = old, False, {old, before.get("previous")}  # nothing to do
        else:
            generation, changed = _new_generation(meta, layout.name, labels, links, old), True
            _switch(meta, generation)
            keep = {generation, old}
        _add_tops(view, tops)
        removed = _remove_stale_tops(view, tops)
        _remove_generations(meta, keep)
        fsync_dir(view)
    return ViewResult(
        view, layout.name, generation, labels, links, changed, removed, seconds=time.monotonic() - started
    )


# -- what the links point into ----------------------------------------------------------------------


class Source(Protocol):
    """The store a view links into: which versions it shows, and the links that place one of them."""

    @property
    def dest(self) -> str: ...

    def holds(self, path: str) -> bool:
        """Is path inside the store (where no view may be)?"""
        ...

    def installed(self) -> list[str]:
        """The models of a view built without --model."""
        ...

    def version(self, name: str, wanted: str | None) -> str:
        """The version of name to show (wanted, else the current one); JobFailed when the store lacks it."""
        ...

    def entries(self, name: str, version: str, folder: str) -> list[str] | None:
        """The names in folder of the version (None: no such directory)."""
        ...

    def links(self, name: str, version: str, placement: Placement) -> dict[str, str] | None:
        """view path -> absolute target placing the version's placement.source (None: it has none)."""
        ...


class LocalVersions:
    """The local or EFS store: one link per placement, to the verified version directory (or a path in it)."""

    def __init__(self, store: LocalStore):
        self.store = store
        self.dest = store.dest

    def holds(self, path: str) -> bool:
        store = self.store
        return path == store.dest or path == store.meta or path.startswith(store.meta + os.sep)

    def installed(self) -> list[str]:
        return self.store.installed_models()

    def version(self, name: str, wanted: str | None) -> str:
        store, label = self.store, f"{name}@{wanted}" if wanted else name
        version = wanted if wanted else store.current_version(name)
        if (
            version is None
            or store.read_record(name, version) is None
            or not os.path.isdir(store.version_dir(name, version))
        ):
            raise JobFailed(
                f"{label} is not in {store.dest} (no verified record of it): pull it first "
                f"(modelsync pull --model {label}), or seed the mirror"
            )
        return version

    def entries(self, name: str, version: str, folder: str) -> list[str] | None:
        try:
            return os.listdir(os.path.join(self.store.version_dir(name, version), folder))
        except OSError:
            return None

    def links(self, name: str, version: str, placement: Placement) -> dict[str, str] | None:
        vdir = self.store.version_dir(name, version)
        target = os.path.join(vdir, placement.source) if placement.source else vdir
        return {placement.path: target} if os.path.exists(target) else None


class ManifestFiles:
    """The bucket tree (S3 Files, bucket_store.py): the tree is live, and an object written later under a
    version's files/ would show in a linked directory. So a placement becomes real directories (in the
    view's read-only generation) holding one link per file of the checked manifest, and nothing else."""

    def __init__(self, store: BucketStore, manifests: list[Manifest]):
        self.store, self.dest = store, store.dest
        self.manifests = {m.name: m for m in manifests}

    def holds(self, path: str) -> bool:
        return path == self.dest or path.startswith(self.dest + os.sep)

    def installed(self) -> list[str]:
        return sorted(self.manifests)

    def version(self, name: str, wanted: str | None) -> str:
        manifest = self.manifests.get(name)
        if manifest is None or wanted not in (None, manifest.version):
            label = f"{name}@{wanted}" if wanted else name
            raise JobFailed(
                f"{label} was not checked in {self.dest}: verify it first (modelsync verify --store bucket)"
            )
        return manifest.version

    def _paths(self, name: str) -> list[str]:
        return [entry.path for entry in self.manifests[name].files]

    def entries(self, name: str, version: str, folder: str) -> list[str] | None:
        inside = [
            p[len(folder) + 1 :] if folder else p for p in self._paths(name) if not folder or p.startswith(folder + "/")
        ]
        return sorted({p.split("/", 1)[0] for p in inside}) or None

    def links(self, name: str, version: str, placement: Placement) -> dict[str, str] | None:
        base, source = self.store.files_dir(name, version), placement.source
        paths = self._paths(name)
        if source in paths:  # the placement is one file
            return {placement.path: f"{base}/{source}"}
        under = [p for p in paths if not source or p.startswith(source + "/")]
        return {f"{placement.path}/{p[len(source) + 1 :] if source else p}": f"{base}/{p}" for p in under} or None


# -- which versions, and what links to them ------------------------------------------------------


def _specs(source: Source, models: list[str] | None) -> list[tuple[str, str | None]]:
    specs: list[tuple[str, str | None]] = (
        [parse_model_spec(m) for m in models] if models else [(n, None) for n in source.installed()]
    )
    if not specs:
        raise JobFailed(f"no models under {source.dest} to put in a view: pull them first (modelsync pull)")
    names = [name for name, _ in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ModelsyncError(f"model {twice[0]!r} is given twice: a view shows one version of each model")
    return specs


def _links(source: Source, layout: Layout, chosen: list[tuple[str, str]]) -> dict[str, str]:
    placed: list[tuple[str, Placement]] = []
    links: dict[str, str] = {}
    for name, version in chosen:
        for placement in layout.place(name):
            for concrete in placement.expand(_entries(source, placement, layout, name, version)):
                found = source.links(name, version, concrete)
                if found is None:
                    raise LayoutError(
                        f"layout {layout.name!r} links {concrete.source!r} of {name}@{version}, "
                        f"which it does not have: use a layout that fits this model"
                    )
                placed.append((name, concrete))
                links.update(found)
    check_collisions(layout.name, placed)
    return dict(sorted(links.items()))


def _entries(source: Source, placement: Placement, layout: Layout, name: str, version: str) -> list[str]:
    if not placement.each_entry:
        return []
    found = source.entries(name, version, placement.source_dir)
    if found is None:
        raise LayoutError(
            f"layout {layout.name!r} links each entry of {placement.source_dir or '.'!r} of "
            f"{name}@{version}, which has no such directory: use a layout that fits this model"
        )
    return found


# -- the view directory --------------------------------------------------------------------------


def _prepare(view: str, layout: Layout) -> None:
    """The view directory exists, and an app_writable one is writable for an app of any uid."""
    if os.path.lexists(view) and not os.path.isdir(view):
        raise ModelsyncError(f"the view {view} is not a directory: give --view / MODELSYNC_VIEW a directory")
    try:
        os.makedirs(os.path.join(view, VIEW_META), exist_ok=True)
        mode = stat.S_IMODE(os.stat(view).st_mode)
        if layout.app_writable and mode != WRITABLE_VIEW_MODE:
            try:
                os.chmod(view, WRITABLE_VIEW_MODE)
            except PermissionError:
                if mode & 0o003 != 0o003:  # someone else's directory that others may write (a 1777 volume) will do
                    raise
    except OSError as exc:
        raise ModelsyncError(
            f"cannot prepare the view {view} ({exc.strerror}): use a directory this user owns "
            "and can write for --view / MODELSYNC_VIEW"
        ) from None


@contextlib.contextmanager
def _locked(meta: str):
    fd = os.open(os.path.join(meta, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _top_target(top: str) -> str:
    return f"{VIEW_META}/{CURRENT}/{top}"


def _ours(path: str, top: str) -> bool:
    """Is <view>/<top> a link modelsync made? (Its target names itself through `current`.)"""
    try:
        return os.readlink(path) == _top_target(top)
    except OSError:
        return False


def _check_tops_free(view: str, tops: list[str]) -> None:
    for top in tops:
        path = os.path.join(view, top)
        if os.path.lexists(path) and not _ours(path, top):
            raise ModelsyncError(
                f"{path} exists and was not made by modelsync: move it away, or build the view in another directory"
            )


def _current_generation(meta: str) -> str | None:
    try:
        return os.readlink(os.path.join(meta, CURRENT))
    except FileNotFoundError:
        return None


def _record(meta: str, generation: str) -> dict:
    try:
        with open(os.path.join(meta, f"{generation}.json")) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}  # unreadable: the view is simply rebuilt


def _new_generation(meta: str, layout: str, labels: list[str], links: dict[str, str], previous: str | None) -> str:
    """The complete tree of a new generation, read-only, plus its record; not visible yet."""
    generation = f"{GENERATION_PREFIX}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    root = os.path.join(meta, generation)
    try:
        os.mkdir(root)
        for path, target in links.items():
            link = os.path.join(root, *path.split("/"))
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(target, link)
        for current, _dirs, _files in os.walk(root, topdown=False):
            fsync_dir(current)
            os.chmod(current, 0o555)
        record = {
            "layout": layout,
            "models": labels,
            "links": links,
            "previous": previous,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        temp = os.path.join(meta, f".{generation}.json.tmp")
        with open(temp, "w") as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, os.path.join(meta, f"{generation}.json"))
    except OSError as exc:
        _remove_tree(root)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(meta, f".{generation}.json.tmp"))
        raise JobFailed(
            f"cannot build the view in {os.path.dirname(meta)} ({exc.strerror}): check free space "
            "and permissions; the view is unchanged"
        ) from None
    return generation


def _switch(meta: str, generation: str) -> None:
    """One rename: every reader sees the old generation or the new one, never a mix."""
    temp = os.path.join(meta, f".{CURRENT}.{uuid.uuid4().hex}")
    os.symlink(generation, temp)
    os.replace(temp, os.path.join(meta, CURRENT))
    fsync_dir(meta)


def _add_tops(view: str, tops: list[str]) -> None:
    for top in tops:
        path = os.path.join(view, top)
        if _ours(path, top):
            continue
        try:  # creating a symlink is atomic, and never replaces what an app may have put there since
            os.symlink(_top_target(top), path)
        except FileExistsError:
            if not _ours(path, top):
                _check_tops_free(view, [top])


def _remove_stale_tops(view: str, tops: list[str]) -> list[str]:
    removed = []
    for entry in sorted(os.scandir(view), key=lambda e: e.name):
        if entry.name not in tops and _ours(entry.path, entry.name):
            os.unlink(entry.path)
            removed.append(entry.name)
    return removed


def _remove_generations(meta: str, keep: set[str | None]) -> None:
    for name in os.listdir(meta):
        if name.startswith((f".{GENERATION_PREFIX}", f".{CURRENT}.")):  # left by a builder that died
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(meta, name))
            continue
        generation = name[: -len(".json")] if name.endswith(".json") else name
        if generation.startswith(GENERATION_PREFIX) and generation not in keep:
            path = os.path.join(meta, name)
            if name.endswith(".json"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            else:
                _remove_tree(path)


def _remove_tree(root: str) -> None:
    """Remove a generation (its directories are read-only: make them writable first)."""
    for current, _dirs, _files in os.walk(root):
        with contextlib.suppress(OSError):
            os.chmod(current, 0o755)
    shutil.rmtree(root, ignore_errors=True)
