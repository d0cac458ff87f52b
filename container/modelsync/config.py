"""Defaults from the environment (task definitions set these), and checks of user-given names and files."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import ModelsyncError

DEFAULT_PREFIX = "models/"
DEFAULT_DEST = "/models"
DEFAULT_CONCURRENCY = 16
DEFAULT_PORT = 8080
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


def default_bucket() -> str | None:
    return env("MODELSYNC_BUCKET")


def default_prefix() -> str:
    return normalize_prefix(env("MODELSYNC_PREFIX", DEFAULT_PREFIX))


def default_dest() -> str:
    return env("MODELSYNC_DEST", DEFAULT_DEST)


def default_concurrency() -> int:
    return env_int("MODELSYNC_CONCURRENCY", DEFAULT_CONCURRENCY)


def default_part_size() -> int:
    return env_int("MODELSYNC_PART_SIZE_MIB", DEFAULT_PART_SIZE_MIB) * 1024 * 1024


def default_durable() -> bool:
    """MODELSYNC_DURABLE: fsync every downloaded file before its rename (default 1). A destination that
    dies with the task (the init container's task-local volume) sets 0: after a machine crash nobody
    reads it again, and a killed process loses nothing the kernel has (see docs/runtime.md)."""
    raw = (env("MODELSYNC_DURABLE", "1") or "").lower()
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise ModelsyncError(f"MODELSYNC_DURABLE={raw!r} is not 0 or 1: use 1 (fsync, the default) or 0 "
                             "(a task-local volume that dies with the task)")
    return raw in ("1", "true", "yes")


def default_signing_key() -> str | None:
    """MODELSYNC_SIGNING_KEY: KMS key ARN, alias/NAME or PEM private key file (publish, seed)."""
    return env("MODELSYNC_SIGNING_KEY")


def default_trust_key() -> str | None:
    """MODELSYNC_TRUST_KEY: KMS key ARN, alias/NAME or PEM public key file (pull, verify, list, seed)."""
    return env("MODELSYNC_TRUST_KEY")


def default_port() -> int:
    return check_port(env_int("MODELSYNC_PORT", DEFAULT_PORT), "MODELSYNC_PORT")


def check_port(port: int, where: str = "--port") -> int:
    if not 0 <= port <= 65535:
        raise ModelsyncError(f"{where} {port} is not a TCP port: use a number in 0-65535 (0: any free port)")
    return port


def default_view() -> str | None:
    return env("MODELSYNC_VIEW")


def default_layout() -> str | None:
    return env("MODELSYNC_LAYOUT")


def default_layouts_file() -> str | None:
    return env("MODELSYNC_LAYOUTS")


def default_models() -> list[str] | None:
    """MODELSYNC_MODELS as a list; None (every model at LATEST) when unset or empty."""
    raw = env("MODELSYNC_MODELS")
    if raw is None:
        return None
    return [item.strip() for item in raw.split(",") if item.strip()] or None


def normalize_prefix(prefix: str) -> str:
    prefix = prefix.strip().lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix


def require_bucket(bucket: str | None) -> str:
    if not bucket:
        raise ModelsyncError("no bucket given: pass --bucket NAME or set MODELSYNC_BUCKET")
    return bucket


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
        import yaml  # only the commands that read such a file pay for the import

        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelsyncError(f"{self.label} {self.path} not found; {how_to_change}") from None
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or "not UTF-8"
            raise ModelsyncError(f"{self.label} {self.path} cannot be read ({reason}); check the path and its "
                                 "permissions") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            problem = getattr(err, "problem", None) or "invalid YAML"
            raise ModelsyncError(f"{self.label} {self.path}: {problem}{where}; fix the YAML syntax") from None

    def fail(self, where: str, problem: str, fix: str) -> ModelsyncError:
        return ModelsyncError(f"{self.label} {self.path}: {where}: {problem}; {fix}")

    def mapping(self, value: Any, where: str, *, required: set[str], optional: set[str] = frozenset()) -> dict:
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
            raise self.fail(where, f"must be a {'' if empty else 'non-empty '}string, got {value!r}",
                            "quote the value in YAML")
        return value.strip()
