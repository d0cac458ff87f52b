"""How a setting is declared: one dataclass field with its meaning, what it allows and the rule that checks it.

    vpc_id: str = setting("", "Use an existing VPC ...", "a vpc- id, or empty", check=_vpc_id)

A section is a frozen dataclass of such fields (sections.py). `Section.build` turns a block of cdk.json values
or `-c` strings into the section: every value is converted by its field's type, checked by its field's rule
(with `where` = the setting's full name, e.g. `setting 'apps.ocr.cpu'`), then the section's rules between its
fields run (`check_together`). The settings reference (docs/settings.md) is generated from the same fields.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar, NoReturn, Self

from stacks.errors import SettingsError

Check = Callable[[Any, str], object]  # (value, where) -> anything; raises ModelDeliveryError with one line


@dataclass(frozen=True)
class Doc:
    what: str  # what the setting does
    allowed: str  # the values it takes, in words
    check: Check | None = None
    items: str = "strings"  # for a list: what each item is


def setting(default: Any, what: str, allowed: str, *, check: Check | None = None, items: str = "strings") -> Any:
    doc = {"doc": Doc(what, allowed, check, items)}
    if isinstance(default, dict):
        frozen = dict(default)
        return field(default_factory=lambda: dict(frozen), metadata=doc)
    return field(default=default, metadata=doc)


def derived(default: Any = ()) -> Any:
    """A value the loader computes (from the catalog, the app's name): not settable."""
    return field(default=default, metadata={"derived": True})


def fail(where: str, value: Any, allowed: str) -> NoReturn:
    raise SettingsError(f"{where} = {value!r} is not allowed: use {allowed}")


def where(prefix: str, name: str) -> str:
    return f"setting '{prefix}{name}'"


class Section:
    """Base of the settings sections: building from values, the settable fields and their docs."""

    section_title: ClassVar[str] = ""
    section_doc: ClassVar[str] = ""

    @classmethod
    def settable(cls) -> list[Field]:
        return [f for f in fields(cls) if "doc" in f.metadata]  # type: ignore[arg-type]

    @classmethod
    def setting_names(cls) -> list[str]:
        return [f.name for f in cls.settable()]

    @classmethod
    def build(cls, values: Mapping[str, Any], prefix: str = "", **computed: Any) -> Self:
        """The section from `values` (cdk.json types, or strings from `-c`), every value converted and checked."""
        by_name = {f.name: f for f in cls.settable()}
        hints = typing.get_type_hints(cls)
        converted: dict[str, Any] = {}
        for name, value in values.items():
            if name not in by_name:
                raise SettingsError(
                    f"unknown setting {prefix + name!r}: allowed here are {', '.join(by_name)} "
                    "(docs/settings.md lists every setting)"
                )
            converted[name] = convert(hints[name], value, where(prefix, name), by_name[name].metadata["doc"])
        section = cls(**converted, **computed)
        for f in cls.settable():
            doc: Doc = f.metadata["doc"]
            if doc.check is not None:
                doc.check(getattr(section, f.name), where(prefix, f.name))
        section.check_together(prefix)
        return section

    def check_together(self, prefix: str) -> None:
        """Rules between this section's fields (a section overrides it)."""


def default_of(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise AssertionError(f"setting {f.name} has no default")


def convert(kind: Any, value: Any, at: str, doc: Doc) -> Any:
    """A cdk.json value or a `-c` string (from the command line every value is a string) as the field's type."""
    from_cli = isinstance(value, str)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if from_cli and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        fail(at, value, "true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_cli and re.fullmatch(r"-?[0-9]+", value.strip()):
            return int(value)
        fail(at, value, "a whole number")
    if kind is str:
        if isinstance(value, str):
            return value.strip()
        fail(at, value, "a string")
    if kind == tuple[str, ...]:
        if from_cli:
            value = _cli_list(value, at)
        if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
            return tuple(item.strip() for item in value)
        fail(at, value, f"a list of {doc.items} (on the command line: comma separated, or a JSON list)")
    if kind == Mapping[str, str]:
        if from_cli:
            value = _cli_json(value, at, 'a JSON object of strings, e.g. {"team":"ml"}')
        if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return dict(value)
        fail(at, value, 'an object of string keys and string values, e.g. {"team":"ml"}')
    if isinstance(kind, type) and issubclass(kind, Section):  # a nested section, e.g. an app's alarms
        if from_cli:
            value = _cli_json(value, at, "a JSON object of its settings")
        if not isinstance(value, dict):
            fail(at, value, f"an object of {', '.join(kind.setting_names())}")
        return kind.build(value, at.split("'")[1] + ".")
    raise AssertionError(f"no conversion for setting type {kind}")  # a new type without one is a bug


def _cli_list(value: str, at: str) -> Any:
    """`-c key=a,b` or `-c 'key=["a", "b,c"]'` (a JSON list keeps commas inside items)."""
    if value.strip().startswith("["):
        return _cli_json(value, at, 'a JSON list of strings, e.g. ["a", "b"]')
    return [item.strip() for item in value.split(",") if item.strip()]


def _cli_json(value: str, at: str, allowed: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        fail(at, value, allowed)
