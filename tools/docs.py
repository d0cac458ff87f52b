"""The generated references: `python -m tools.docs --write` (make docs) writes them, `--check` lists the stale ones.

    docs/settings.md        stacks.settings.reference  (the settings declarations)
    docs/reference/cli.md   tools.cli_reference        (modelsync's parser)
    docs/reference/api.md   tools.api_reference        (model_delivery.__all__ and its docstrings)

Each has a test that fails when the committed page differs from what its generator writes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from stacks.settings import reference as settings_reference
from tools import api_reference, cli_reference

PAGES: list[tuple[Path, Callable[[], str]]] = [
    (settings_reference.PAGE, settings_reference.render),
    (cli_reference.PAGE, cli_reference.render),
    (api_reference.PAGE, api_reference.render),
]


def stale() -> list[Path]:
    """The pages whose committed text differs from what their generator writes."""
    return [page for page, render in PAGES if not page.exists() or page.read_text() != render()]


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        for page, render in PAGES:
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(render())
            print(f"wrote {page}")
        return 0
    if argv == ["--check"]:
        pages = stale()
        for page in pages:
            print(f"{page} is stale: run `make docs` and commit it", file=sys.stderr)
        return 1 if pages else 0
    print("usage: python -m tools.docs --write | --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
