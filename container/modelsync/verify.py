"""`verify`: does every model under dest match its manifest (sizes; deep: every byte)?"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .config import parse_model_spec
from .errors import ModelsyncError
from .hashing import sha256_many
from .oms import BUNDLE_NAME
from .store import LocalStore, Record


@dataclass
class ModelState:
    name: str
    version: str | None
    files: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)
    record: Record | None = field(default=None, repr=False)  # the verified record, when there is one


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
    max_latest_age seconds (when given)."""
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
    if deep:
        _check_content(store, states, workers)
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
    vdir = store.version_dir(name, version)
    expected = {e.path: e for e in record.manifest.files}
    state.files, state.bytes = len(expected), record.manifest.total_bytes
    for path, entry in expected.items():
        try:
            size = os.stat(os.path.join(vdir, path)).st_size
        except OSError:
            state.problems.append(f"{name}/{path}: missing")
            continue
        if size != entry.size:
            state.problems.append(f"{name}/{path}: size {size} but the manifest says {entry.size}")
    for current, _dirs, filenames in os.walk(vdir):
        for filename in filenames:
            rel = os.path.relpath(os.path.join(current, filename), vdir).replace(os.sep, "/")
            if rel not in expected and rel != BUNDLE_NAME:  # the version's OMS bundle (checked with a trust key)
                state.problems.append(f"{name}/{rel}: not in the manifest")
    return state


def _check_content(store: LocalStore, states: list[ModelState], workers: int | None) -> None:
    wanted = {}
    for state in states:
        record, version = state.record, state.version
        if record is None or version is None:
            continue
        vdir = store.version_dir(state.name, version)
        for entry in record.manifest.files:
            wanted[os.path.join(vdir, entry.path)] = (state, entry)
    digests = sha256_many(list(wanted), workers=workers)
    for path, (state, entry) in wanted.items():
        digest = digests.get(path)
        if isinstance(digest, OSError):
            continue  # already reported as missing
        if digest != entry.sha256:
            state.problems.append(
                f"{state.name}/{entry.path}: sha256 {str(digest)[:12]}... does not match the manifest"
            )
