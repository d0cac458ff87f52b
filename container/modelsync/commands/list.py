"""modelsync list: models in the bucket with versions, sizes, creation times and LATEST."""

from __future__ import annotations

import json
from dataclasses import asdict

from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser("list", help="list published models and versions")
    _common.add_bucket(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..catalog_s3 import list_versions
    from ..progress import human_bytes

    bucket, prefix = _common.bucket_and_prefix(args)
    models = list_versions(_common.client_for(args, 4), bucket, prefix=prefix)
    if args.json:
        print(json.dumps([asdict(m) for m in models], indent=1))
        return 0
    print(f"{'MODEL':<32} {'VERSION':<18} {'CREATED':<21} {'FILES':>6} {'SIZE':>11}  LATEST")
    for model in models:
        for v in model.versions:
            latest = "*" if v.version == model.latest else ""
            created = v.created or "(no manifest)"
            print(f"{model.name:<32} {v.version:<18} {created:<21} {v.files:>6} {human_bytes(v.bytes):>11}  {latest}")
    return 0
