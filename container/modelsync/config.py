"""Defaults from the environment (task definitions set these), and checks of user-given names and files."""

from __future__ import annotations

import os
import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelsyncError

DEFAULT_PREFIX = "models/"
DEFAULT_DEST = "/models"
DEFAULT_CONCURRENCY = 16
DEFAULT_PORT = 8080
DEFAULT_DOWNLOAD_ATTEMPTS = 5  # tries of one byte range whose transfer breaks (download.py)
DEFAULT_PART_SIZE_MIB = 32
DEFAULT_LAYOUT = "flat"  # the view layout when neither --layout nor MODELSYNC_LAYOUT is given

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Versions come from the bucket and become directory names: same safe alphabet, no "..".
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int, *, minimum: int = 1) -> int:
    raw = env(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ModelsyncError(f"{name}={raw!r} is not a whole number: set it to e.g. {default}") from None
    if value < minimum:
        raise ModelsyncError(f"{name}={value} is too small: use at least {minimum}")
    return value


def default_part_size() -> int:
    """The part size of library callers that pass none (the CLI passes --part-size-mib)."""
    return env_int("MODELSYNC_PART_SIZE_MIB", DEFAULT_PART_SIZE_MIB) * 1024 * 1024


def default_durable() -> bool:
    """MODELSYNC_DURABLE: fsync every downloaded file before its rename (default 1). A destination that
    dies with the task (the init container's task-local volume) sets 0: after a machine crash nobody
    reads it again, and a killed process loses nothing the kernel has (see docs/runtime.md)."""
    raw = (env("MODELSYNC_DURABLE", "1") or "").lower()
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise ModelsyncError(
            f"MODELSYNC_DURABLE={raw!r} is not 0 or 1: use 1 (fsync, the default) or 0 "
            "(a task-local volume that dies with the task)"
        )
    return raw in ("1", "true", "yes")


def normalize_prefix(prefix: str) -> str:
    prefix = prefix.strip().lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix


# The characters of S3 bucket names (older us-east-1 names may also hold capitals and '_'); their length
# rules are left to S3, which answers NoSuchBucket in one line.
BUCKET_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,253}[A-Za-z0-9])?")


@dataclass(frozen=True)
class BucketLocation:
    bucket: str
    prefix: str | None  # None: the URL named no prefix (--prefix / MODELSYNC_PREFIX / models/ then)


def parse_bucket(raw: str) -> BucketLocation:
    """'NAME' or 's3://NAME[/PREFIX]' (as --bucket or MODELSYNC_BUCKET); ValueError says what is wrong."""
    text = raw.strip()
    prefix = None
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() != "s3":
            raise ValueError("is not an S3 location: give a bucket NAME or s3://NAME[/PREFIX]")
        text, slash, path = rest.partition("/")
        prefix = normalize_prefix(path) if slash and path.strip("/") else None
    if not BUCKET_RE.fullmatch(text) or ".." in text:
        raise ValueError("does not name a bucket: give NAME or s3://NAME[/PREFIX] (NAME: letters, digits, '.', '-')")
    return BucketLocation(text, prefix)


def bucket_and_prefix(location: BucketLocation | None, prefix: str | None) -> tuple[str, str]:
    """The bucket and the prefix from --bucket (maybe an s3:// URL with a prefix) and --prefix."""
    if location is None:
        raise ModelsyncError("no bucket given: pass --bucket NAME or set MODELSYNC_BUCKET (NAME or s3://NAME/PREFIX)")
    if location.prefix is not None and prefix is not None and normalize_prefix(prefix) != location.prefix:
        raise ModelsyncError(
            f"two prefixes given: {location.prefix!r} in the bucket URL and {prefix!r} from "
            "--prefix / MODELSYNC_PREFIX: give the prefix once"
        )
    if location.prefix is not None:
        return location.bucket, location.prefix
    return location.bucket, normalize_prefix(prefix if prefix is not None else DEFAULT_PREFIX)


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise ModelsyncError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit, at most 128 characters)"
        )
    return name


def check_version(version: str, *, name: str) -> str:
    if not VERSION_RE.fullmatch(version or "") or ".." in version:
        raise ModelsyncError(
            f"invalid version {version!r} for model {name!r}: versions use letters, digits, '.', '_' or '-'"
        )
    return version


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """'NAME' -> (NAME, None); 'NAME@VERSION' -> (NAME, VERSION)."""
    name, sep, version = spec.strip().partition("@")
    check_name(name)
    if sep:
        return name, check_version(version, name=name)
    return name, None


class StrictYaml:
    """Strict checks of a parsed YAML file (catalog, layouts): an unknown key is an error, so a typo
    cannot silently turn a check off; every problem is one line naming the file, the place and the fix."""

    label = "file"  # how messages name the file, e.g. "catalog"
    format_hint = "see its format"  # the fix for a value of the wrong shape

    def __init__(self, path: Path):
        self.path = path

    def read(self, how_to_change: str) -> Any:
        """The parsed file, or a one-line ModelsyncError naming it."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelsyncError(f"{self.label} {self.path} not found; {how_to_change}") from None
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or "not UTF-8"
            raise ModelsyncError(
                f"{self.label} {self.path} cannot be read ({reason}); check the path and its permissions"
            ) from None
        return self.parse(text)

    def parse(self, text: str) -> Any:
        import yaml  # only the commands that read such a document pay for the import

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            problem = getattr(err, "problem", None) or "invalid YAML"
            raise ModelsyncError(f"{self.label} {self.path}: {problem}{where}; fix the YAML syntax") from None

    def fail(self, where: str, problem: str, fix: str) -> ModelsyncError:
        return ModelsyncError(f"{self.label} {self.path}: {where}: {problem}; {fix}")

    def mapping(
        self, value: Any, where: str, *, required: AbstractSet[str], optional: AbstractSet[str] = frozenset()
    ) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}", self.format_hint)
        missing_keys = sorted(required - value.keys())
        if missing_keys:
            raise self.fail(where, f"missing {', '.join(missing_keys)}", "add the key(s)")
        unknown = sorted(str(k) for k in value.keys() - required - optional)
        if unknown:
            allowed = ", ".join(sorted(required | optional))
            raise self.fail(where, f"unknown key(s) {', '.join(unknown)}", f"use only: {allowed}")
        return value

    def text(self, value: Any, where: str, *, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.fail(
                where, f"must be a {'' if empty else 'non-empty '}string, got {value!r}", "quote the value in YAML"
            )
        return value.strip()
