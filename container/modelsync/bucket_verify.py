"""`verify --store bucket`: check the models of the mounted bucket tree (bucket_store.py) before the app starts
(docs/runtime.md, "Bucket store (S3 Files mode)").

Per model: its version (a pin, or what LATEST names); its manifest; with a trust key the checks a pull makes
(trust.check_pull_targets over the tree: the manifest's signature, its OMS bundle, and for LATEST the statement:
this version and manifest, the repository when known, the maximum age); then the tree against the manifest:
every file there at its size, no file more under files/, and with deep the sha256 of every byte.

S3 Files shows new objects seconds (observed: up to ~30 s) after they were written, so a LATEST can name a
version whose manifest or files are not visible yet. What is only absent, or not at its size yet, is waited for
up to `wait` seconds, polling with backoff; anything present and wrong (a signature, an extra file, a link, a
sha256) fails at once, never waited on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import backoff
from .bucket_store import BucketStore
from .config import parse_model_spec
from .errors import JobFailed
from .freshness import age_text
from .hashing import sha256_many
from .keys import Verifier
from .manifest import Manifest, latest_key, latest_version_in, manifest_in, manifest_key
from .signing import signature_key
from .store import Record
from .storefs import TreeRefused
from .trust import check_pull_targets
from .verify import ModelState

FIRST_POLL_SECONDS, MAX_POLL_SECONDS = 0.5, 5.0
LATE_FIX = (
    "if the bucket was written just now, raise --wait-for-files / MODELSYNC_WAIT_FOR_FILES (S3 Files shows new "
    "objects after seconds); else check that the seed or publish of the model finished (modelsync list)"
)


class _Late(Exception):
    """Absent, or not at its size: it may still appear in the mount."""


@dataclass
class _Target:
    """What trust.check_pull_targets reads of a target (no local record: the tree is the only copy)."""

    name: str
    version: str
    manifest: Manifest
    latest: bool
    record: None = None

    def content(self) -> Manifest:
        return self.manifest


def verify_bucket(
    root,
    models: list[str] | None = None,
    *,
    deep: bool = False,
    workers: int | None = None,
    trust: Verifier | None = None,
    repository: str | None = None,
    max_latest_age: int | None = None,
    wait: float = 0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[ModelState]:
    """One ModelState per model (problems empty: good; record: the checked manifest, for the view). With wait
    (seconds), models whose manifest or files are only missing or not at their size are checked again until
    complete or the time is up; then one line per such model names its first missing file and the fix."""
    store = BucketStore(root, repository)
    if not os.path.isdir(store.dest):
        return [
            ModelState(
                "*",
                None,
                problems=[
                    f"{store.dest} is not a directory: mount the models bucket there (S3 Files) or point "
                    "--dest / MODELSYNC_DEST at the mount"
                ],
            )
        ]
    specs = [parse_model_spec(m) for m in models] if models else [(n, None) for n in store.model_names()]
    if not specs:
        return [ModelState("*", None, problems=[f"no models with a LATEST under {store.dest}: seed or publish first"])]
    deadline, attempt = clock() + wait, 0
    while True:
        checked = [_check_model(store, name, wanted, trust, max_latest_age) for name, wanted in specs]
        late = any(missing for _state, missing in checked)
        failed = any(state.problems for state, _missing in checked)
        if not late or failed or clock() >= deadline:
            break
        attempt += 1
        sleep(max(0.0, min(backoff.delay(attempt, first=FIRST_POLL_SECONDS, cap=MAX_POLL_SECONDS), deadline - clock())))
    waited = f" after waiting {age_text(wait)}" if wait and not failed else ""
    states = []
    for state, missing in checked:
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            state.problems.append(f"{_label(state)}: {missing[0]}{more}{waited}: {LATE_FIX}")
        states.append(state)
    if deep:
        _check_bytes(store, [s for s in states if not s.problems and s.record is not None], workers)
    return states


def _label(state: ModelState) -> str:
    return f"{state.name}@{state.version}" if state.version else state.name


def _check_model(
    store: BucketStore, name: str, wanted: str | None, trust: Verifier | None, max_age: int | None
) -> tuple[ModelState, list[str]]:
    """The model's state and what is missing so far (only absent or not at its size: may still appear)."""
    state = ModelState(name, wanted)
    try:
        if wanted is None:
            state.version = latest_version_in(store, name)
            if state.version is None:
                raise _Late(f"{store.where(latest_key(store.prefix, name))} is missing")
        version = state.version
        assert version is not None
        manifest = manifest_in(store, name, version)
        if manifest is None:
            raise _Late(f"{store.where(manifest_key(store.prefix, name, version))} is missing")
        if trust is not None:
            signature = store.where(signature_key(store.prefix, name, version))
            if not os.path.lexists(signature):  # absent is late; present and wrong is refused below
                raise _Late(f"{signature} is missing")
            try:
                check_pull_targets(
                    store, None, [_Target(name, version, manifest, wanted is None)], trust, max_age=max_age
                )
            except JobFailed:
                if wanted is None and latest_version_in(store, name) != version:  # LATEST moved on meanwhile
                    raise _Late(
                        f"{store.where(latest_key(store.prefix, name))} moved on while it was checked"
                    ) from None
                raise
        state.record = Record(manifest, {})
        state.files, state.bytes = len(manifest.files), manifest.total_bytes
        return state, _check_files(store, state, manifest)
    except _Late as late:
        return state, [str(late)]
    except JobFailed as exc:  # present and wrong: refused at once (TreeRefused, signatures, bad JSON ...)
        state.problems.append(f"{_label(state)}: {exc}")
        return state, []


def _check_files(store: BucketStore, state: ModelState, manifest: Manifest) -> list[str]:
    """Every file of the manifest at its size (missing: returned), none more (a problem at once)."""
    found = store.scan_files(manifest.name, manifest.version)
    base = store.files_dir(manifest.name, manifest.version)
    missing = []
    for entry in manifest.files:
        st = found.get(entry.path)
        where = f"{base}/{entry.path}"
        if st is None:
            missing.append(f"{where} is missing")
        elif st.st_size != entry.size:
            missing.append(f"{where} has {st.st_size} bytes, the manifest says {entry.size}")
    listed = {entry.path for entry in manifest.files}
    state.problems += [
        f"{_label(state)}: {base}/{path} is not in the manifest (written after the version was published?): "
        "remove that object; the version's objects are never overwritten"
        for path in sorted(set(found) - listed)
    ]
    return missing


def _check_bytes(store: BucketStore, states: list[ModelState], workers: int | None) -> None:
    """--deep: the sha256 of every file, read through descriptors that never follow a link."""
    for state in states:
        assert state.record is not None
        manifest = state.record.manifest
        base = store.files_dir(manifest.name, manifest.version)
        try:
            digests = _digests(store, manifest, workers)
        except (OSError, TreeRefused) as exc:
            state.problems.append(f"{_label(state)}: {base} cannot be read ({exc})")
            continue
        for entry in manifest.files:
            digest = digests[entry.path]
            if isinstance(digest, OSError):
                state.problems.append(f"{_label(state)}: {base}/{entry.path} cannot be read ({digest.strerror})")
            elif digest != entry.sha256:
                state.problems.append(
                    f"{_label(state)}: {base}/{entry.path}: sha256 {digest[:12]}... does not match the manifest: "
                    "the bucket's object is not what was published; republish the model"
                )


def _digests(store: BucketStore, manifest: Manifest, workers: int | None) -> dict[str, str | OSError]:
    """path -> sha256 (or OSError) of the version's files (keyed by full path inside: biggest hashed first)."""
    base, files = store.files_dir(manifest.name, manifest.version), store.open_files(manifest.name, manifest.version)
    try:
        slots = {f"{base}/{entry.path}": files.slot(entry.path) for entry in manifest.files}
        found = sha256_many(list(slots), workers=workers, opened=lambda p: (slots[p].name, slots[p].dir.fd))
    finally:
        files.close()
    return {path[len(base) + 1 :]: digest for path, digest in found.items()}
