"""Every relative link and anchor in README.md, CONTRIBUTING.md, CHANGELOG.md and docs/ resolves (tools/doc_links.py),
and the checker itself finds what is broken: small fixtures of pages, and a copy of the real docs with one link
broken on purpose."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tools import doc_links
from tools.doc_links import ROOT, anchors, check, slug


def test_every_relative_link_and_anchor_in_the_docs_resolves():
    broken = check()
    assert not broken, "broken links (fix them, or the heading they point to):\n" + "\n".join(map(str, broken))


def test_the_docs_have_links_to_check():
    """The checker finds the links (a parser that found none would pass everything)."""
    assert {"README.md", "CONTRIBUTING.md", "CHANGELOG.md"} <= {page.name for page in doc_links.pages()}
    found = [target for page in doc_links.pages() for _, target in doc_links.links(page.read_text())]
    assert len(found) > 50
    assert any("#" in t and not t.startswith("#") for t in found)  # anchors into other pages
    assert any(t.startswith("#") for t in found)  # in-page anchors


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        # GitHub's rules: markup removed, lower case, punctuation but '-' and '_' dropped, spaces to '-'.
        ("Local / EFS layout: what `modelsync pull` produces and the app reads",
         "local--efs-layout-what-modelsync-pull-produces-and-the-app-reads"),
        ("What's new? (v2.1)", "whats-new-v21"),
        ("`IMAGE_USER`", "image_user"),
        ("A -- B", "a----b"),
        ("Größe und Übersicht", "größe-und-übersicht"),
        ("**Bold** and [a link](other.md)", "bold-and-a-link"),
        ("modelsync pull", "modelsync-pull"),
    ],
)
def test_slugs_follow_githubs_rules(heading, expected):
    assert slug(heading) == expected


def write(root: Path, name: str, body: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def site(tmp_path: Path) -> Path:
    write(tmp_path, "README.md", """\
        # Project

        See [the guide](docs/guide.md), [its setup](docs/guide.md#set-up-the-thing), [the code](tools/x.py),
        [a folder](docs/), [a site](https://example.org/missing) and [mail](mailto:a@example.org).

        ## Set up

        In-page: [above](#project), [here](#set-up), [the second one](#set-up-1).

        ## Set up
        """)
    write(tmp_path, "docs/guide.md", """\
        # Guide

        ## Set up the thing

        ```sh
        # not a heading
        [not a link](missing.md)
        ```

        `[nor this](missing.md)`; a reference: [back][home].

        [home]: ../README.md#project
        """)
    write(tmp_path, "tools/x.py", "")
    return tmp_path


def test_a_site_whose_links_resolve_passes(site):
    assert check(site) == []
    assert anchors((site / "README.md").read_text()) == {"project", "set-up", "set-up-1"}


@pytest.mark.parametrize(
    ("link", "problem"),
    [
        ("[gone](docs/gone.md)", "no such file or directory"),
        ("[gone](docs/guide.md#nowhere)", "no heading with the anchor #nowhere in guide.md"),
        ("[here](#set-up-2)", "no heading with the anchor #set-up-2 in README.md"),
        ("[case](docs/Guide.md)", "no such file or directory"),
        ("[a heading in code](docs/guide.md#not-a-heading)", "no heading with the anchor"),
        ("[img](docs/pic.svg)", "no such file or directory"),
        ('<img src="docs/pic.png">', "no such file or directory"),
    ],
)
def test_a_broken_link_is_reported_with_its_page_and_line(site, link, problem):
    readme = site / "README.md"
    readme.write_text(readme.read_text() + f"\nBroken: {link}\n")
    broken = check(site)
    assert len(broken) == 1, broken
    assert (broken[0].page, broken[0].line) == (readme, len(readme.read_text().splitlines()))
    assert problem in broken[0].problem and str(broken[0]).startswith(f"{readme}:{broken[0].line}: ")


def test_a_link_broken_on_purpose_in_a_copy_of_the_real_docs_fails(tmp_path):
    """The real pages pass; the same pages with one anchor misspelt do not."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    for entry in ROOT.iterdir():  # everything else the pages link to (code, Makefile, ...), as it is
        if entry.name not in ("README.md", "docs"):
            (tmp_path / entry.name).symlink_to(entry)
    assert check(tmp_path) == []
    page = tmp_path / "docs" / "runbook.md"
    text = page.read_text()
    target = next(t for _, t in doc_links.links(text) if "#" in t and not t.startswith("#"))
    page.write_text(text.replace(f"({target})", f"({target}-misspelt)", 1))
    broken = check(tmp_path)
    assert [(b.page, b.target) for b in broken] == [(page, f"{target}-misspelt")]
