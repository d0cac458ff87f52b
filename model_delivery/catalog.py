"""What the constructs need from the model catalog: entry names, whether they are seeded by default,
their estimated sizes, and a hash that changes when the catalog file changes.

The catalog itself (format, sources, validation of every field) belongs to the seeding code in the
modelsync package; this module reads only the three keys the infrastructure depends on. The default is
the catalog bundled with modelsync (the one the modelsync image seeds from).
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import yaml

from model_delivery.errors import ModelDeliveryError

# The catalog the modelsync image bundles (and seeds from), found through the installed package.
DEFAULT_CATALOG = Path(str(importlib.resources.files("modelsync") / "catalog.yaml"))


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    enabled: bool
    approx_size_mb: float


@dataclass(frozen=True)
class Catalog:
    path: Path
    entries: tuple[CatalogEntry, ...]
    sha256: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(entry.name for entry in self.entries)

    @property
    def enabled_names(self) -> tuple[str, ...]:
        return tuple(entry.name for entry in self.entries if entry.enabled)

    def size_mb(self, name: str) -> float:
        return next(entry.approx_size_mb for entry in self.entries if entry.name == name)


def load_catalog(path: Path = DEFAULT_CATALOG) -> Catalog:
    """Read the catalog; any problem is a ModelDeliveryError (one line, names the file and the fix)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelDeliveryError(
            f"model catalog {path} not found: the CDK app reads model names and "
            "sizes from it; restore the file (it ships with container/modelsync)"
        ) from None
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        first_line = str(exc).splitlines()[0]
        raise ModelDeliveryError(f"model catalog {path} is not valid YAML ({first_line}); fix the file") from None
    models = document.get("models") if isinstance(document, dict) else None
    if not isinstance(models, list) or not models:
        raise ModelDeliveryError(f"model catalog {path} needs a top-level 'models:' list with at least one entry")
    entries = [_entry(path, index, item) for index, item in enumerate(models)]
    names = [entry.name for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ModelDeliveryError(
            f"model catalog {path} names {', '.join(duplicates)} more than once; names must be unique"
        )
    return Catalog(path=path, entries=tuple(entries), sha256=hashlib.sha256(raw).hexdigest())


def _entry(path: Path, index: int, item: object) -> CatalogEntry:
    where = f"model catalog {path}, entry {index + 1}"
    if not isinstance(item, dict):
        raise ModelDeliveryError(f"{where} is not a mapping; each entry needs name, enabled and approx_size_mb")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ModelDeliveryError(f"{where} has no 'name'; give every entry a non-empty name")
    enabled = item.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ModelDeliveryError(f"{where} ({name}): 'enabled' is {enabled!r}; use true or false")
    size = item.get("approx_size_mb")
    if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0:
        raise ModelDeliveryError(
            f"{where} ({name}): 'approx_size_mb' is {size!r}; give a positive number of MB "
            "(an estimate is enough, it sizes ephemeral storage)"
        )
    return CatalogEntry(name=name, enabled=enabled, approx_size_mb=float(size))
