"""View layouts: where each model goes in a view directory, read from a YAML file (data, not code).

Pure on purpose (stdlib, PyYAML, modelsync.errors and modelsync.config only): the CDK app imports
it at synth to check a service's layout against its models. The format is documented at the top
of the bundled `modelsync/layouts.yaml`; `modelsync.view` builds views from these placements.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DEFAULT_LAYOUT, StrictYaml
from .errors import ModelsyncError

BUNDLED_LAYOUTS = Path(__file__).resolve().parent / "layouts.yaml"
ENTRY = "entry"  # the field of an each-entry rule's path: one entry of its source directory
RESERVED_PREFIX = ".modelsync"  # the view keeps its own state in <view>/.modelsync-view
_LAYOUT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LayoutError(ModelsyncError):
    """A model a layout cannot place, or two models on one path (exit 2, one line)."""


@dataclass(frozen=True)
class Placement:
    """Where one model goes: `path` in the view links to `source` inside its version directory
    ('' = the version directory itself). An each-entry placement (`source` 'DIR/*', `path`
    'P/{entry}') links every entry of DIR as P/<entry>; see `each_entry` and `expand`."""

    path: str
    source: str

    @property
    def each_entry(self) -> bool:
        return self.source == "*" or self.source.endswith("/*")

    @property
    def source_dir(self) -> str:
        """The directory whose entries an each-entry placement links ('' = the version directory)."""
        return self.source[:-1].rstrip("/") if self.each_entry else self.source

    @property
    def parent(self) -> str:
        """The view directory an each-entry placement fills (its path without '/{entry}')."""
        return self.path.rpartition("/")[0]

    def expand(self, entries: list[str]) -> list[Placement]:
        """Concrete placements, one per entry of the source directory (itself when not each-entry)."""
        if not self.each_entry:
            return [self]
        return [Placement(_join(self.parent, e), _join(self.source_dir, e)) for e in sorted(entries)]


@dataclass(frozen=True)
class _Rule:
    index: int
    match: re.Pattern
    path: str
    source: str

    def placement(self, layout: str, model: str) -> Placement | None:
        found = self.match.fullmatch(model)
        if found is None:
            return None
        values = {k: v or "" for k, v in found.groupdict().items()}
        values["name"] = model
        if self.source.endswith("*"):
            values[ENTRY] = "{" + ENTRY + "}"
        path = self.path.format_map(values)
        problem = path_problem(path)
        if problem:
            raise LayoutError(
                f"layout {layout!r} cannot place model {model!r}: rule {self.index + 1} gives the "
                f"path {path!r}, which {problem}: fix that rule in the layouts file"
            )
        return Placement(path, self.source)

    def document(self) -> dict[str, str]:
        return {"match": self.match.pattern, "path": self.path, **({"source": self.source} if self.source else {})}


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    app_writable: bool
    environment: tuple[tuple[str, str], ...]
    rules: tuple[_Rule, ...]

    def app_environment(self, view_path: str) -> dict[str, str]:
        """What the app container sets, for the view mounted at view_path in the app."""
        return {key: value.format(view=view_path) for key, value in self.environment}

    def place(self, model_name: str) -> list[Placement]:
        for rule in self.rules:
            placement = rule.placement(self.name, model_name)
            if placement is not None:
                return [placement]
        raise LayoutError(
            f"layout {self.name!r} cannot place model {model_name!r}: no rule matches it; "
            f"use --layout {DEFAULT_LAYOUT} or add a rule to the layouts file"
        )

    def check(self, model_names: list[str]) -> None:
        """Place every model; LayoutError when one cannot be placed or two would collide."""
        check_collisions(self.name, [(m, p) for m in model_names for p in self.place(m)])

    def document(self) -> dict[str, Any]:
        """This layout alone as a layouts document (the format of layouts.yaml): what a task definition
        carries, so the init container applies exactly the rules synth checked (load_layouts_text)."""
        spec: dict[str, Any] = {"description": self.description, "rules": [rule.document() for rule in self.rules]}
        if self.app_writable:
            spec["app_writable"] = True
        if self.environment:
            spec["app_environment"] = dict(self.environment)
        return {"layouts": {self.name: spec}}


@dataclass(frozen=True)
class Layouts:
    path: Path
    layouts: dict[str, Layout]

    def names(self) -> list[str]:
        return sorted(self.layouts)

    def get(self, name: str) -> Layout:
        try:
            return self.layouts[name]
        except KeyError:
            raise ModelsyncError(
                f"unknown layout {name!r} in {self.path}: use one of {', '.join(self.names())} "
                "(--layout / MODELSYNC_LAYOUT)"
            ) from None


def check_collisions(layout: str, placed: list[tuple[str, Placement]]) -> None:
    """No two placements on one path or one inside another. Each-entry placements share their
    directory: they collide only with other paths there (their entries are checked once known)."""
    claims = [(p.parent, m, True) if p.each_entry else (p.path, m, False) for m, p in placed]
    for i, (path_a, model_a, shared_a) in enumerate(claims):
        for path_b, model_b, shared_b in claims[i + 1 :]:
            if path_a == path_b and not (shared_a and shared_b):
                where = f"both land on {path_a!r}"
            elif path_a != path_b and (_inside(path_a, path_b) or _inside(path_b, path_a)):
                inner, outer = (path_a, path_b) if _inside(path_a, path_b) else (path_b, path_a)
                where = f"land on {inner!r} inside {outer or 'the view'!r}"
            else:
                continue
            if model_a == model_b:
                raise LayoutError(f"layout {layout!r}: model {model_a!r} is given twice: give each model once")
            raise LayoutError(
                f"layout {layout!r}: models {model_a!r} and {model_b!r} {where}: serve only one "
                "of them in this view, or change the rules in the layouts file"
            )


def path_problem(path: str) -> str | None:
    """Why `path` cannot be a place in a view, or None."""
    if not path:
        return "is empty"
    if path.startswith("/"):
        return "is absolute"
    if "\\" in path or any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "contains a backslash or a control character"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' part"
    if parts[0].startswith(RESERVED_PREFIX):
        return f"starts with {RESERVED_PREFIX!r} (kept for modelsync's own state)"
    return None


def _inside(inner: str, outer: str) -> bool:
    return outer == "" or inner.startswith(outer + "/")


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


# -- loading ------------------------------------------------------------------------------------


def load_layouts(path: str | os.PathLike | None = None) -> Layouts:
    """The layouts of `path` (None: the bundled file); ModelsyncError naming any problem."""
    reader = _Reader(Path(path) if path else BUNDLED_LAYOUTS)
    return reader.layouts(reader.read("pass --layouts FILE or set MODELSYNC_LAYOUTS"))


def load_layouts_text(text: str, label: str) -> Layouts:
    """Layouts from a document given inline (JSON is YAML), e.g. Layout.document() carried by a task definition."""
    reader = _Reader(Path(label))
    return reader.layouts(reader.parse(text))


class _Reader(StrictYaml):
    label, format_hint = "layouts file", "see the format at the top of the bundled layouts.yaml"

    def layouts(self, doc: Any) -> Layouts:
        doc = self.mapping(doc, "top level", required={"layouts"})
        raw = doc["layouts"]
        if not isinstance(raw, dict) or not raw:
            raise self.fail("layouts", "must map layout names to layouts", "add at least one layout")
        return Layouts(self.path, {str(name): self.layout(str(name), spec) for name, spec in raw.items()})

    def layout(self, name: str, raw: Any) -> Layout:
        where = f"layouts.{name}"
        if not _LAYOUT_NAME.fullmatch(name):
            raise self.fail(
                where, "bad layout name", "use lower-case letters, digits, '-' or '_', starting with a letter"
            )
        raw = self.mapping(raw, where, required={"description", "rules"}, optional={"app_writable", "app_environment"})
        writable = raw.get("app_writable", False)
        if not isinstance(writable, bool):
            raise self.fail(f"{where}.app_writable", f"must be true or false, got {writable!r}", "fix the value")
        rules = raw["rules"]
        if not isinstance(rules, list) or not rules:
            raise self.fail(f"{where}.rules", "must be a non-empty list", "add at least one rule")
        return Layout(
            name,
            self.text(raw["description"], f"{where}.description"),
            writable,
            self.environment(raw.get("app_environment") or {}, f"{where}.app_environment"),
            tuple(self.rule(r, f"{where}.rules[{i}]", i) for i, r in enumerate(rules)),
        )

    def environment(self, raw: Any, where: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(raw, dict):
            raise self.fail(where, "must map variable names to values", 'e.g. MODEL_PATH: "{view}"')
        items = []
        for key, value in raw.items():
            if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
                raise self.fail(where, f"bad variable name {key!r}", "use letters, digits and '_'")
            value = self.text(value, f"{where}.{key}", empty=True)
            self.fields(value, f"{where}.{key}", {"view"})
            items.append((key, value))
        return tuple(items)

    def rule(self, raw: Any, where: str, index: int) -> _Rule:
        raw = self.mapping(raw, where, required={"match", "path"}, optional={"source"})
        pattern = self.text(raw["match"], f"{where}.match")
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise self.fail(f"{where}.match", f"bad regex {pattern!r} ({err})", "fix the regular expression") from None
        path = self.text(raw["path"], f"{where}.path")
        source = self.text(raw.get("source", ""), f"{where}.source", empty=True)
        each = source == "*" or source.endswith("/*")
        if source and not each and path_problem(source):
            raise self.fail(
                f"{where}.source",
                f"{source!r} {path_problem(source)}",
                "use a relative path inside the version directory, or DIR/* for each entry of DIR",
            )
        if each and source != "*" and path_problem(source[:-2]):
            raise self.fail(f"{where}.source", f"{source!r} {path_problem(source[:-2])}", "use DIR/* or *")
        if "*" in (source[:-1] if each else source):
            raise self.fail(f"{where}.source", f"{source!r} has a '*' before its end", "use DIR/* or *")
        allowed = set(compiled.groupindex) | {"name"} | ({ENTRY} if each else set())
        used = self.fields(path, f"{where}.path", allowed)
        if each and not (path == "{" + ENTRY + "}" or path.endswith("/{" + ENTRY + "}")):
            raise self.fail(
                f"{where}.path",
                f"{path!r} does not end in '{{{ENTRY}}}'",
                f"a rule with source DIR/* needs a path ending in '/{{{ENTRY}}}'",
            )
        if ENTRY in used and path.count("{" + ENTRY + "}") != 1:
            raise self.fail(f"{where}.path", f"{path!r} uses {{{ENTRY}}} more than once", "use it once, at the end")
        sample = path.format_map({f: "x" for f in allowed})  # the shape of every path the rule can give
        if path_problem(sample):
            raise self.fail(
                f"{where}.path", f"{path!r} {path_problem(sample)}", "use a relative path such as 'models/{name}'"
            )
        return _Rule(index, compiled, path, source)

    def fields(self, template: str, where: str, allowed: set[str]) -> set[str]:
        """The {fields} of a format string: plain names from `allowed`, no format specs."""
        used = set()
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as err:
            raise self.fail(
                where, f"bad braces in {template!r} ({err})", "write {{ and }} for literal braces"
            ) from None
        for _literal, field, spec, conversion in parsed:
            if field is None:
                continue
            if not _FIELD.fullmatch(field) or spec or conversion:
                raise self.fail(where, f"{{{field}}} in {template!r} is not a plain name", "use {group} only")
            if field not in allowed:
                raise self.fail(
                    where,
                    f"{{{field}}} in {template!r} is not defined",
                    f"use one of {', '.join('{' + a + '}' for a in sorted(allowed))}",
                )
            used.add(field)
        return used
