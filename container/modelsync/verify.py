"""`verify`: does every model under dest match its manifest (sizes and stats; deep: every byte)?

A file whose stat (size, mtime, ctime, inode) is the one its record vouches for is trusted; any other
file is hashed before it counts as verified (store.py: what a record vouches for, and why the ctime).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .config import parse_model_spec
from .errors import ModelsyncError
from .hashing import sha256_many
from .oms import BUNDLE_NAME
from .store import LocalStore, Record, StatKey, stat_key

# Files hashed because their stat moved away from the record (by a hard link or a prune of another
# version, or an upgrade from records without ctime): remembered by stat, so `serve`, which verifies
# every few seconds, hashes each once. Any later change of the file changes its ctime, hence the key.
_CONFIRMED: dict[tuple[str, StatKey], str] = {}
_CONFIRMED_MAX = 100_000


@dataclass
class ModelState:
    name: str
    version: str | None
    files: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)
    record: Record | None = field(default=None, repr=False)  # the verified record, when there is one
    # path in the version -> its stat, for files whose stat is not the record's: hashed before they count
    unconfirmed: dict[str, os.stat_result] = field(default_factory=dict, repr=False)


def verify(
    dest,
    models: list[str] | None = None,
    *,
    deep: bool = False,
    workers: int | None = None,
    trust=None,
    repository: str | None = None,
    max_latest_age: int | None = None,
) -> list[ModelState]:
    """One ModelState per model; an empty problems list everywhere means the tree is good. trust (a
    keys.Verifier): each version's record must also keep a manifest signature by that key (and its
    model.sig, if any, must be that key's bundle of its files); a model checked through its link must be
    at the LATEST the store accepted, for repository (s3://BUCKET/PREFIX, when given) and not older than
    max_latest_age seconds (when given). Raises storefs.UnsafeStore for a store someone else owns or may
    write, or with a link where none belongs."""
    store = LocalStore(dest)
    if os.path.exists(store.dest) and not os.path.isdir(store.dest):
        return [
            ModelState(
                "*",
                None,
                problems=[f"{store.dest} is not a directory: point --dest / MODELSYNC_DEST at the model root"],
            )
        ]
    if not os.path.isdir(store.dest):
        return [ModelState("*", None, problems=[f"{store.dest} does not exist: mount or pull the models first"])]
    with store:
        store.check()
        specs = [parse_model_spec(m) for m in models] if models else [(n, None) for n in store.installed_models()]
        if not specs:
            return [ModelState("*", None, problems=[f"no models under {store.dest}: run modelsync pull first"])]
        states = [_check_model(store, name, wanted) for name, wanted in specs]
        if trust is not None:
            from .trust import kept_latest_problem, record_problem

            for state, (_name, wanted) in zip(states, specs, strict=True):
                if state.record is None:
                    continue
                problem = record_problem(store, state.record, trust)
                if problem is None and wanted is None:
                    problem = kept_latest_problem(
                        store, state.name, state.record, trust, repo=repository, max_age=max_latest_age
                    )
                if problem:
                    state.problems.append(problem)
        _check_content(store, states, workers, deep=deep)
    return states


def _check_model(store: LocalStore, name: str, wanted: str | None) -> ModelState:
    """A pinned version (wanted) is checked in .modelsync/versions whatever <dest>/<name> links to:
    in efs mode tasks pin versions of the shared mirror while the seeding task moves its links."""
    if wanted:
        state = ModelState(name, wanted)
    else:
        try:
            state = ModelState(name, store.current_version(name))
        except ModelsyncError as exc:  # <dest>/<name> is a real directory: a problem to report
            return ModelState(name, None, problems=[str(exc)])
        if state.version is None:
            state.problems.append(f"{name}: not installed in {store.dest} (no {name} link): run modelsync pull")
            return state
    version = state.version
    if version is None:  # not installed: reported above
        return state
    record = store.read_record(name, version)
    if record is None:
        state.problems.append(
            f"{name}@{wanted} is not in {store.dest} (no verified record of that version): pull it "
            f"(modelsync pull --model {name}@{wanted}) or seed the mirror"
            if wanted
            else f"{name}@{state.version}: no verified record: run modelsync pull"
        )
        return state
    state.record = record
    expected = {e.path: e for e in record.manifest.files}
    state.files, state.bytes = len(expected), record.manifest.total_bytes
    found = store.scan_version(name, version)
    for path, entry in expected.items():
        st = found.get(path)
        if st is None:
            state.problems.append(f"{name}/{path}: missing")
        elif st.st_size != entry.size:
            state.problems.append(f"{name}/{path}: size {st.st_size} but the manifest says {entry.size}")
        elif st.st_uid != os.geteuid():
            state.problems.append(
                f"{name}/{path}: owned by uid {st.st_uid}, not by this user (someone else replaced it): pull it again"
            )
        elif record.stats.get(path) != stat_key(st):
            state.unconfirmed[path] = st
    unexpected = sorted(set(found) - set(expected) - {BUNDLE_NAME})  # model.sig: checked with a trust key
    state.problems += [f"{name}/{path}: not in the manifest" for path in unexpected]
    return state


def _check_content(store: LocalStore, states: list[ModelState], workers: int | None, *, deep: bool) -> None:
    """Hash the files whose stat is not their record's (all of them when deep) and report a mismatch."""
    wanted = {}
    for state in states:
        record, version = state.record, state.version
        if record is None or version is None:
            continue
        vdir = store.version_dir(state.name, version)
        for entry in record.manifest.files:
            path = os.path.join(vdir, entry.path)
            st = state.unconfirmed.get(entry.path)
            if st is not None and not deep and _CONFIRMED.get((path, stat_key(st))) == entry.sha256:
                continue
            if st is not None or deep:
                wanted[path] = (state, entry, st)
    digests = sha256_many(list(wanted), workers=workers, follow_symlinks=False)
    if len(_CONFIRMED) > _CONFIRMED_MAX:
        _CONFIRMED.clear()
    for path, (state, entry, st) in wanted.items():
        digest = digests.get(path)
        if isinstance(digest, OSError):
            if st is not None:  # not already reported as missing
                state.problems.append(f"{state.name}/{entry.path}: cannot be read ({digest.strerror})")
            continue
        if digest == entry.sha256:
            if st is not None:
                _CONFIRMED[(path, stat_key(st))] = digest
            continue
        changed = "changed since it was verified: " if st is not None else ""
        state.problems.append(
            f"{state.name}/{entry.path}: {changed}sha256 {str(digest)[:12]}... does not match the manifest"
        )
