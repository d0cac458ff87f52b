"""Every relative link and anchor in README.md, CONTRIBUTING.md, CHANGELOG.md and docs/**/*.md resolves
(tests/ops/test_doc_links.py).

A link resolves when its file or directory exists (relative to the page, or to the repository for `/path`)
and its `#anchor`, when it has one and leads to a markdown page, is a heading of that page under GitHub's
slug rules: the heading's text without markup, lower-cased, every character dropped but letters, marks,
digits, '_', '-' and spaces, spaces turned into '-', and the second heading of one slug suffixed -1, the
third -2. Links to other sites are not followed (no network). Code spans and fenced code are not links.

    python -m tools.doc_links        # one line per broken link, exit 1 if any
"""

from __future__ import annotations

import re
import sys
import unicodedata
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_INLINE = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HTML = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
_HTML_ANCHOR = re.compile(r"<a\s[^>]*?(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class Broken:
    page: Path
    line: int
    target: str
    problem: str

    def __str__(self) -> str:
        where = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{where}:{self.line}: {self.target}: {self.problem}"


def pages(root: Path = ROOT) -> list[Path]:
    """README.md, CONTRIBUTING.md, CHANGELOG.md and every markdown page under docs/."""
    top = [root / name for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md") if (root / name).exists()]
    return top + sorted((root / "docs").rglob("*.md"))


def outside_fences(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    out, fence = [], ""
    for number, line in enumerate(text.splitlines(), 1):
        opened = _FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
        elif opened:
            fence = opened.group(1)
        else:
            out.append((number, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (markup removed first)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LMN")
    return kept.strip().lower().replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page offers: its headings' slugs (repeats numbered as GitHub does) and HTML anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in outside_fences(text):
        found.update(_HTML_ANCHOR.findall(line))
        heading = _ATX.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link, image, reference definition and HTML href/src."""
    out = []
    for number, line in outside_fences(text):
        line = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)  # code spans are not links
        targets = [m.group(2) for m in _INLINE.finditer(line)] + _HTML.findall(line)
        reference = _REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        out += [(number, t) for t in targets if t]
    return out


def check_page(page: Path, root: Path = ROOT) -> list[Broken]:
    text = page.read_text()
    broken = []
    cache: dict[Path, set[str]] = {}
    for number, target in links(text):
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # another site (or mailto:): not followed
        path_part, _, anchor = target.partition("#")
        path_part = urllib.parse.unquote(path_part)
        if path_part:
            resolved = (root / path_part.lstrip("/")) if path_part.startswith("/") else (page.parent / path_part)
        else:
            resolved = page
        if not resolved.exists():
            broken.append(Broken(page, number, target, "no such file or directory"))
            continue
        if not anchor or resolved.suffix != ".md" or resolved.is_dir():
            continue
        if resolved not in cache:
            cache[resolved] = anchors(resolved.read_text())
        if urllib.parse.unquote(anchor) not in cache[resolved]:
            broken.append(Broken(page, number, target, f"no heading with the anchor #{anchor} in {resolved.name}"))
    return broken


def check(root: Path = ROOT) -> list[Broken]:
    return [b for page in pages(root) for b in check_page(page, root)]


if __name__ == "__main__":
    problems = check()
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)
