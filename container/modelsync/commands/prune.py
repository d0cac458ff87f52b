"""modelsync prune: keep the last N versions per model in the bucket, or (--local) drop
versions that are no longer current from a local or EFS cache."""

from __future__ import annotations

from ..options import BAD_INPUT, finish, option, whole
from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "prune",
        help="remove old versions from the bucket or (--local) the cache",
        description="Bucket: keep the KEEP newest versions of each model and always its LATEST; versions "
        "without a manifest (a publish in progress) are left alone. --local: remove from DEST every "
        "version no link points to and no running pull has pinned.",
    )
    _common.add_bucket(parser)
    _common.add_dest(parser)
    option(
        parser,
        "--keep",
        default=3,
        convert=whole(1, problem="must be at least 1 (the latest version is always kept)"),
        metavar="N",
        help="versions to keep per model in the bucket",
    )
    option(parser, "--local", action="store_true", help="prune DEST instead of the bucket")
    option(parser, "--dry-run", action="store_true", help="only print what would be removed")
    finish(
        parser,
        example="modelsync prune --bucket s3://my-models --keep 3 --dry-run\n"
        "modelsync prune --local --dest /mnt/efs/models",
        exit_codes={
            0: "pruned (or, --dry-run, listed)",
            1: "a delete failed (the first error stops it)",
            2: BAD_INPUT + "; --local: an unsafe store (see modelsync verify --help), nothing removed",
        },
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..prune import prune_bucket, prune_local

    if args.local:
        report = prune_local(args.dest, dry_run=args.dry_run)
    else:
        bucket, prefix = _common.bucket_and_prefix(args)
        report = prune_bucket(_common.client_for(args, 4), bucket, prefix=prefix, keep=args.keep, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for label in report.in_use:
        print(f"kept {label}: a running pull is using it")
    for label in report.removed:
        print(f"{verb} {label}")
    print(f"{verb} {len(report.removed)} versions, kept {len(report.kept)}")
    return 0
