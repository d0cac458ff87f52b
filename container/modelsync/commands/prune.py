"""modelsync prune: keep the last N versions per model in the bucket, or (--local) drop
versions that are no longer current from a local or EFS cache."""

from __future__ import annotations

from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser("prune", help="remove old versions from the bucket or (--local) the cache")
    _common.add_bucket(parser)
    _common.add_dest(parser)
    parser.add_argument("--keep", type=int, default=3, help="versions to keep per model in the bucket (default 3)")
    parser.add_argument("--local", action="store_true", help="prune DEST instead of the bucket")
    parser.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..errors import ModelsyncError
    from ..prune import prune_bucket, prune_local

    if args.local:
        report = prune_local(args.dest, dry_run=args.dry_run)
    else:
        if args.keep < 1:
            raise ModelsyncError("--keep must be at least 1 (the latest version is always kept)")
        bucket, prefix = _common.bucket_and_prefix(args)
        report = prune_bucket(_common.client_for(args, 4), bucket, prefix=prefix, keep=args.keep,
                              dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for label in report.in_use:
        print(f"kept {label}: a running pull is using it")
    for label in report.removed:
        print(f"{verb} {label}")
    print(f"{verb} {len(report.removed)} versions, kept {len(report.kept)}")
    return 0
