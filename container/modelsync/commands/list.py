"""modelsync list: models in the bucket with versions, sizes, creation times and LATEST."""

from __future__ import annotations

import json
from dataclasses import asdict

from ..options import BAD_INPUT, finish, option
from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list published models and versions",
        description="Every model under the bucket and prefix: its versions (newest first), creation time, file "
        "count, size, and which one LATEST points to. --json prints the same as one JSON array.",
    )
    _common.add_bucket(parser)
    option(parser, "--json", action="store_true", help="print JSON instead of a table")
    _common.add_trust_key(parser)
    finish(
        parser,
        example="modelsync list --bucket s3://my-models/models\nmodelsync list --json | jq '.[].latest'",
        exit_codes={0: "listed", 2: BAD_INPUT},
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..published import list_versions

    bucket, prefix = _common.bucket_and_prefix(args)
    trust = _common.trust(args)
    models = list_versions(_common.client_for(args, 4), bucket, prefix=prefix, trust=trust)
    if args.json:
        print(json.dumps([_without_unchecked(asdict(m)) for m in models], indent=1))
        return 0
    print("\n".join(format_list(models, signed=trust is not None)))
    return 0


def format_list(models, *, signed: bool) -> list[str]:
    """The table, its column widths from the data. With a trust key, a SIGNED column marks each
    version (listed, never refused: list changes nothing)."""
    from ..progress import human_bytes
    from ..table import format_table

    header = ("MODEL", "VERSION", "CREATED", "FILES", "SIZE", *(("SIGNED",) if signed else ()), "LATEST")
    rows = [header]
    for model in models:
        for v in model.versions:
            mark = (_MARKS.get(v.signature, "-"),) if signed else ()
            rows.append(
                (
                    model.name,
                    v.version,
                    v.created or "(no manifest)",
                    str(v.files),
                    human_bytes(v.bytes),
                    *mark,
                    "*" if v.version == model.latest else "",
                )
            )
    return format_table(rows, right=frozenset({3, 4}))


def _without_unchecked(model: dict) -> dict:
    """No trust key: the JSON stays what it was (no signature member)."""
    for version in model["versions"]:
        if version["signature"] is None:
            del version["signature"]
    return model


_MARKS = {"valid": "yes", "missing": "UNSIGNED", "invalid": "INVALID"}
