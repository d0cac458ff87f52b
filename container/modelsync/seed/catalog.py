"""The model catalog: which models the seeder can publish, where each comes from, and how to
check it. The format is documented at the top of the bundled `modelsync/catalog.yaml`.

Validation is strict (unknown keys are errors, so a typo cannot silently disable a check) and
every problem is reported as one line naming the file, the entry and the fix.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelsync.config import NAME_RE, StrictYaml
from modelsync.errors import ModelsyncError
from modelsync.options import comma_list
from modelsync.seed.extract import DEFAULT_MAX_FILES
from modelsync.seed.fetch import is_local_http
from modelsync.seed.locate import Requirement
from modelsync.table import format_table

BUNDLED_CATALOG = Path(__file__).resolve().parent.parent / "catalog.yaml"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PADDLE_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DEFAULT_MAX_EXTRACTED_MB = 8192
# The download cap when an entry sets none: a generous multiple of the estimate (of the extracted
# size; archives are smaller), so a wrong estimate still passes while an endless body cannot fill the disk.
DOWNLOAD_CAP_FACTOR = 4


@dataclass(frozen=True)
class ZenodoSource:
    record: str
    file: str
    sha256: str | None = None  # the archive's pinned digest: a download with another one is refused

    def identity(self) -> dict:
        # Not the pin: adding one must not make a published version look like another source's.
        return {"type": "zenodo", "record": self.record, "file": self.file}


@dataclass(frozen=True)
class HttpsSource:
    url: str
    sha256: str

    @property
    def file(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "download.zip"

    def identity(self) -> dict:
        return {"type": "https", "url": self.url, "sha256": self.sha256}


@dataclass(frozen=True)
class PaddleOCRSource:
    paddleocr_version: str
    lang: str
    model_source: str
    options: dict = field(hash=False)
    expected_models: tuple[str, ...]

    def pipeline_kwargs(self) -> dict:
        return {"lang": self.lang, **self.options}

    def identity(self) -> dict:
        # Everything that decides which files the pipeline downloads.
        return {
            "type": "paddleocr",
            "paddleocr_version": self.paddleocr_version,
            "lang": self.lang,
            "model_source": self.model_source,
            "options": dict(sorted(self.options.items())),
            "expected_models": list(self.expected_models),
        }


Source = ZenodoSource | HttpsSource | PaddleOCRSource


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    enabled: bool
    approx_size_mb: int
    source: Source
    family: str | None = None  # archive sources only
    requirements: tuple[Requirement, ...] = ()
    max_extracted_mb: int = DEFAULT_MAX_EXTRACTED_MB
    max_extracted_files: int = DEFAULT_MAX_FILES
    max_download_mb: int | None = None  # None: DOWNLOAD_CAP_FACTOR x approx_size_mb

    @property
    def download_cap_mb(self) -> int:
        return self.max_download_mb or DOWNLOAD_CAP_FACTOR * self.approx_size_mb


@dataclass(frozen=True)
class Catalog:
    path: Path
    entries: tuple[CatalogEntry, ...]

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def select(self, only: list[str] | None = None) -> list[CatalogEntry]:
        """The entries to seed: `only` (any entry, enabled or not) or else the enabled ones."""
        if not only:
            return [e for e in self.entries if e.enabled]
        by_name = {e.name: e for e in self.entries}
        unknown = [n for n in only if n not in by_name]
        if unknown:
            raise ModelsyncError(
                f"not in the catalog {self.path}: {', '.join(unknown)}; choose from: {', '.join(self.names())}"
            )
        return [by_name[n] for n in dict.fromkeys(only)]


def parse_only(value: str | None) -> list[str]:
    """`--only` / MODELSYNC_SEED_ONLY: a comma list of catalog names; empty means none given."""
    return comma_list(value)


def load_catalog(path: Path | str | None = None) -> Catalog:
    parser = _Parser(Path(path) if path else BUNDLED_CATALOG)
    return parser.catalog(parser.read("pass --catalog FILE or set MODELSYNC_CATALOG"))


class _Parser(StrictYaml):
    label, format_hint = "catalog", "see the format at the top of the bundled catalog"

    def sha256(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not _SHA256.match(value.lower()):
            raise self.fail(
                where,
                f"sha256 must be 64 hex digits, got {value!r}",
                "put the archive's sha256 in quotes (sha256sum FILE, or the digest the seed summary prints)",
            )
        return value.lower()

    def positive_int(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(where, f"must be a positive whole number, got {value!r}", "fix the value")
        return value

    # -- document -------------------------------------------------------------------------------

    def catalog(self, doc: Any) -> Catalog:
        doc = self.mapping(doc, "top level", required={"models"}, optional={"defaults", "families"})
        defaults = self.mapping(
            doc.get("defaults") or {}, "defaults", required=set(), optional={"max_extracted_mb", "max_extracted_files"}
        )
        limits = {
            "max_extracted_mb": self.positive_int(
                defaults.get("max_extracted_mb", DEFAULT_MAX_EXTRACTED_MB), "defaults.max_extracted_mb"
            ),
            "max_extracted_files": self.positive_int(
                defaults.get("max_extracted_files", DEFAULT_MAX_FILES), "defaults.max_extracted_files"
            ),
        }
        families = self.families(doc.get("families") or {})
        models = doc["models"]
        if not isinstance(models, list) or not models:
            raise self.fail("models", "must be a non-empty list of entries", "add at least one entry")
        entries, seen = [], set()
        for index, raw in enumerate(models):
            entry = self.entry(raw, index, families, limits)
            if entry.name in seen:
                raise self.fail(f"models[{index}] ({entry.name})", "duplicate name", "give every entry its own name")
            seen.add(entry.name)
            entries.append(entry)
        return Catalog(self.path, tuple(entries))

    def families(self, raw: Any) -> dict[str, tuple[Requirement, ...]]:
        if not isinstance(raw, dict):
            raise self.fail("families", "must map a family name to its required_files", "see the bundled catalog")
        families = {}
        for name, spec in raw.items():
            where = f"families.{name}"
            spec = self.mapping(spec, where, required={"required_files"})
            files = spec["required_files"]
            if not isinstance(files, list) or not files:
                raise self.fail(
                    where, "required_files must be a non-empty list", "list file names, or lists of alternatives"
                )
            requirements = []
            for item in files:
                alternatives = item if isinstance(item, list) else [item]
                if not alternatives or not all(isinstance(a, str) and a and "/" not in a for a in alternatives):
                    raise self.fail(where, f"bad required file {item!r}", "use plain file names (no folders)")
                requirements.append(tuple(alternatives))
            families[str(name)] = tuple(requirements)
        return families

    def entry(self, raw: Any, index: int, families: dict, limits: dict[str, int]) -> CatalogEntry:
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"models[{index}]" + (f" ({name})" if isinstance(name, str) else "")
        raw = self.mapping(
            raw,
            where,
            required={"name", "enabled", "approx_size_mb", "source"},
            optional={"family", "max_download_mb", *limits},
        )
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise self.fail(
                where,
                f"name {name!r} is not a valid model name",
                "use letters, digits, '.', '_' or '-' (up to 128, starting with a letter or digit)",
            )
        if not isinstance(raw["enabled"], bool):
            raise self.fail(where, f"enabled must be true or false, got {raw['enabled']!r}", "fix the value")
        size = self.positive_int(raw["approx_size_mb"], f"{where}: approx_size_mb")
        entry_limits = {
            key: self.positive_int(raw.get(key, default), f"{where}: {key}") for key, default in limits.items()
        }
        cap = raw.get("max_download_mb")
        cap = None if cap is None else self.positive_int(cap, f"{where}: max_download_mb")
        source = self.source(raw["source"], f"{where}: source")
        family, requirements = raw.get("family"), ()
        if isinstance(source, PaddleOCRSource):
            if family is not None:
                raise self.fail(
                    where, "a paddleocr source has no family", "remove 'family' (expected_models lists what it needs)"
                )
        else:
            if family not in families:
                known = ", ".join(sorted(families)) or "none defined"
                raise self.fail(where, f"family {family!r} is not defined", f"use one of: {known}")
            requirements = families[family]
        return CatalogEntry(
            name=name,
            enabled=raw["enabled"],
            approx_size_mb=size,
            source=source,
            family=family,
            requirements=requirements,
            max_download_mb=cap,
            **entry_limits,
        )

    def source(self, raw: Any, where: str) -> Source:
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind == "zenodo":
            raw = self.mapping(raw, where, required={"type", "record", "file"}, optional={"sha256"})
            record = str(raw["record"])
            if not record.isdigit():
                raise self.fail(
                    where, f"record {raw['record']!r} is not a Zenodo record id", "use the number from the record URL"
                )
            file = self.text(raw["file"], f"{where}.file")
            if "/" in file:
                raise self.fail(
                    where, f"file {file!r} contains '/'", "use the file name exactly as the record lists it"
                )
            pin = None if raw.get("sha256") is None else self.sha256(raw["sha256"], where)
            return ZenodoSource(record=record, file=file, sha256=pin)
        if kind == "https":
            raw = self.mapping(raw, where, required={"type", "url", "sha256"})
            url = self.text(raw["url"], f"{where}.url")
            parts = urllib.parse.urlsplit(url)
            if not (parts.scheme == "https" and parts.hostname) and not is_local_http(url):
                raise self.fail(
                    where,
                    f"url {url!r} is not https",
                    "use an https:// URL (plain http only to 127.0.0.1, localhost or [::1])",
                )
            return HttpsSource(url=url, sha256=self.sha256(raw["sha256"], where))
        if kind == "paddleocr":
            raw = self.mapping(
                raw,
                where,
                required={"type", "paddleocr_version", "lang", "expected_models"},
                optional={"options", "model_source"},
            )
            version = raw["paddleocr_version"]
            if not isinstance(version, str) or not re.match(r"^\d+(\.\d+)+$", version):
                raise self.fail(
                    where, f"paddleocr_version {version!r} is not an exact version", 'quote a pin such as "3.7.0"'
                )
            options = raw.get("options") or {}
            if not isinstance(options, dict) or not all(
                isinstance(k, str) and k.isidentifier() and k != "lang" and isinstance(v, (bool, int, float, str))
                for k, v in options.items()
            ):
                raise self.fail(
                    where,
                    "options must map PaddleOCR argument names to plain values",
                    "e.g. use_textline_orientation: true (set lang with 'lang')",
                )
            models = raw["expected_models"]
            if (
                not isinstance(models, list)
                or not models
                or not all(isinstance(m, str) and _PADDLE_MODEL.match(m) for m in models)
            ):
                raise self.fail(where, "expected_models must list model folder names", "e.g. PP-OCRv6_medium_det")
            model_source = raw.get("model_source", "huggingface")
            if model_source not in ("huggingface", "aistudio", "modelscope", "bos"):
                raise self.fail(
                    where, f"model_source {model_source!r} is unknown", "use huggingface, aistudio, modelscope or bos"
                )
            return PaddleOCRSource(
                paddleocr_version=version,
                lang=self.text(raw["lang"], f"{where}.lang"),
                model_source=model_source,
                options=dict(options),
                expected_models=tuple(models),
            )
        raise self.fail(where, f"type {kind!r} is unknown", "use type: zenodo, https or paddleocr")


def format_catalog(catalog, selected) -> str:
    chosen = {e.name for e in selected}
    rows = [("NAME", "ENABLED", "SELECTED", "APPROX_MB", "SOURCE")]
    for e in catalog.entries:
        source = e.source
        if isinstance(source, PaddleOCRSource):
            where = f"paddleocr {source.paddleocr_version} lang={source.lang}"
        elif isinstance(source, HttpsSource):
            where = source.url
        else:
            where = f"zenodo {source.record}/{source.file}"
        rows.append(
            (e.name, "yes" if e.enabled else "no", "yes" if e.name in chosen else "no", str(e.approx_size_mb), where)
        )
    lines = format_table(rows)
    total = sum(e.approx_size_mb for e in selected)
    lines.append(f"{len(selected)} selected, about {total} MB (estimates) from {catalog.path}")
    return "\n".join(lines)
