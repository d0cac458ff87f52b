"""docs/reference/cli.md is what tools/cli_reference.py generates from modelsync's parser, it holds what each
subcommand's --help says (options, variables, defaults, examples, exit codes), and it does not depend on the
terminal it is generated in."""

from __future__ import annotations

import re

import pytest

from modelsync import cli, options
from tools import cli_reference
from tools.cli_reference import PAGE, render


def subcommands():
    parser = cli.build_parser()
    return parser._defaults["_subparsers"].choices


def section(text: str, name: str) -> str:
    return text.split(f"\n## modelsync {name}\n", 1)[1].split("\n## ", 1)[0]


def test_the_committed_cli_reference_is_what_the_parser_generates():
    assert PAGE.read_text() == render(), "docs/reference/cli.md is stale: run `make docs` and commit it"


def test_a_changed_option_makes_the_committed_page_stale(monkeypatch):
    """The drift test can fail: an option added to a subcommand shows in the page at once."""
    from modelsync.commands import view

    register = view.register

    def with_an_option(subparsers):
        register(subparsers)
        options.option(subparsers.choices["view"], "--colour", env="MODELSYNC_COLOUR", default="blue", help="hue")

    monkeypatch.setattr(view, "register", with_an_option)
    text = render()
    assert text != PAGE.read_text()
    assert "| `--colour COLOUR` | `MODELSYNC_COLOUR` | blue | hue |" in section(text, "view")


@pytest.mark.parametrize("name", [m.rsplit(".", 1)[1] for m in cli.COMMANDS])
def test_each_subcommand_has_what_its_help_says(name):
    page = section(PAGE.read_text(), name)
    parser = subcommands()[name]
    help_text = parser.format_help()
    assert parser.description and " ".join(parser.description.split()) in " ".join(page.split())
    for opt in options.declared(parser):
        assert re.search(rf"`{re.escape(opt.flag)}[ `]", page), opt.flag
        for env in opt.envs:
            assert f"`{env}`" in page and env in help_text
        if opt.shown_default:
            assert opt.shown_default in page
    epilog = options.epilog_of(parser)
    assert epilog is not None, f"modelsync {name} has no finish(): no examples or exit codes"
    for example in epilog.examples:
        assert example in page and example in help_text
    for code, meaning in epilog.exit_codes.items():
        assert f"| {code} | {meaning.replace('|', chr(92) + '|')} |" in page
        assert str(code) in help_text


def test_the_page_does_not_depend_on_the_terminal(monkeypatch):
    widths = set()
    for columns in ("40", "300"):
        monkeypatch.setenv("COLUMNS", columns)
        widths.add(render())
    assert len(widths) == 1


def test_usage_wraps_at_its_own_width():
    words = [f"[--option-{i} VALUE]" for i in range(12)]
    text = cli_reference.usage("modelsync pull", words)
    lines = text.splitlines()
    assert len(lines) > 1 and all(len(line) <= cli_reference.USAGE_WIDTH for line in lines)
    assert lines[0].startswith("usage: modelsync pull [--option-0 VALUE]")
    assert all(line.startswith(" " * len("usage: modelsync pull ")) for line in lines[1:])
    assert text.split() == ["usage:", "modelsync", "pull", *" ".join(words).split()]
