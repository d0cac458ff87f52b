"""modelsync pull: make DEST/NAME hold exactly the wanted version of each model."""

from __future__ import annotations

import json
import sys

from .. import metrics
from ..options import BAD_INPUT, STOPPED, finish, option
from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pull",
        help="download models (only what is missing), verified, atomically",
        description="Make DEST/NAME hold exactly the wanted version of each model (default every model at "
        "LATEST): download only what is missing or different, check every byte's sha256, then switch "
        "DEST/NAME to the version atomically. --dry-run prints what would be downloaded and writes "
        "nothing.",
    )
    _common.add_bucket(parser)
    _common.add_dest(parser)
    _common.add_models(parser)
    _common.add_transfer(parser)
    _common.add_download_attempts(parser)
    option(
        parser,
        "--dry-run",
        action="store_true",
        help='print one JSON line per file that would be downloaded or linked ({"action": "download"|"link", '
        "...}), then a summary line; write nothing",
    )
    _common.add_view(parser)
    _common.add_trust_key(parser)
    _common.add_max_latest_age(parser)
    finish(
        parser,
        example="modelsync pull --bucket s3://my-models/models --dest /models --model ocr --model det@v3\n"
        "modelsync pull --dry-run --model ocr",
        exit_codes={
            0: "every model is in place (or, --dry-run, the plan was printed)",
            1: "a transfer, a checksum or a model failed (the other models are still pulled); with a trust key, "
            "a signature or LATEST was refused (nothing switched)",
            2: BAD_INPUT + "; a missing model, version or bucket; an unsafe store (see modelsync verify --help)",
            "128+N": STOPPED,
        },
        extra_env={"MODELSYNC_DURABLE": "1 fsync each file (default), 0 for a volume that dies with the task"},
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..errors import PullFailed
    from ..pull import pull

    bucket, prefix = _common.bucket_and_prefix(args)
    wanted = args.models
    layout = _common.view_layout(args, wanted)  # before anything is downloaded
    workers = args.concurrency
    trust = _common.trust(args)
    max_age = _common.max_latest_age(args, trust)
    if args.dry_run:
        return _dry_run(args, bucket, prefix, trust, max_age)
    progress = _common.make_progress(args)
    try:
        result = pull(
            _common.client_for(args, workers),
            bucket,
            args.dest,
            wanted,
            prefix=prefix,
            concurrency=workers,
            progress=progress,
            part_size=_common.part_size(args),
            trust=trust,
            max_latest_age=max_age,
            download_attempts=args.download_attempts,
        )
    except PullFailed as exc:
        _print(progress, exc.result, failed=True)
        raise
    _print(progress, result, failed=False)
    if layout:
        _common.build_view(args, layout, [f"{m.name}@{m.version}" for m in result.models])
    return 0


def _dry_run(args, bucket: str, prefix: str, trust, max_age: int | None) -> int:
    """One JSON line per file to download or link, then a summary; nothing written under DEST."""
    from dataclasses import asdict

    from ..pull import plan

    def warn(message, key):
        print(json.dumps({"event": "warning", "message": message, "key": key}), file=sys.stderr)

    targets, planned, in_place = plan(
        _common.client_for(args, 4),
        bucket,
        args.dest,
        args.models,
        prefix=prefix,
        trust=trust,
        max_latest_age=max_age,
        warn=warn,
    )
    for item in planned:
        print(json.dumps(asdict(item), sort_keys=True))
    downloads = [p for p in planned if p.action == "download"]
    print(
        json.dumps(
            {
                "event": "summary",
                "action": "pull",
                "dry_run": True,
                "models": [f"{t.name}@{t.version}" for t in targets],
                "download_files": len(downloads),
                "download_bytes": sum(p.bytes for p in downloads),
                "link_files": len(planned) - len(downloads),
                "in_place_files": in_place,
            },
            sort_keys=True,
        )
    )
    return 0


def _print(progress, result, *, failed: bool) -> None:
    _common.print_summary(
        progress,
        _common.summary(
            "pull",
            result.downloaded_files,
            result.downloaded_bytes,
            result.skipped_files,
            result.seconds,
            failed=failed,
            models=[f"{m.name}@{m.version}" for m in result.models],
        ),
    )
    metrics.pull_finished(result, progress, failed=failed)
