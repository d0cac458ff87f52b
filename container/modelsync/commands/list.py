"""modelsync list: models in the bucket with versions, sizes, creation times and LATEST."""

from __future__ import annotations

import json
from dataclasses import asdict

from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser("list", help="list published models and versions")
    _common.add_bucket(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _common.add_trust_key(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..catalog_s3 import list_versions
    from ..progress import human_bytes

    bucket, prefix = _common.bucket_and_prefix(args)
    trust = _common.trust(args)
    models = list_versions(_common.client_for(args, 4), bucket, prefix=prefix, trust=trust)
    if args.json:
        print(json.dumps([_without_unchecked(asdict(m)) for m in models], indent=1))
        return 0
    # With a trust key, a SIGNED column marks each version (listed, never refused: list changes nothing).
    signed = f"  {'SIGNED':<8}" if trust else ""
    print(f"{'MODEL':<32} {'VERSION':<18} {'CREATED':<21} {'FILES':>6} {'SIZE':>11}{signed}  LATEST")
    for model in models:
        for v in model.versions:
            latest = "*" if v.version == model.latest else ""
            created = v.created or "(no manifest)"
            mark = f"  {_MARKS.get(v.signature, '-'):<8}" if trust else ""
            print(f"{model.name:<32} {v.version:<18} {created:<21} {v.files:>6} {human_bytes(v.bytes):>11}{mark}"
                  f"  {latest}")
    return 0


def _without_unchecked(model: dict) -> dict:
    """No trust key: the JSON stays what it was (no signature member)."""
    for version in model["versions"]:
        if version["signature"] is None:
            del version["signature"]
    return model


_MARKS = {"valid": "yes", "missing": "UNSIGNED", "invalid": "INVALID"}
