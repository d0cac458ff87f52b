"""modelsync pull: make DEST/NAME hold exactly the wanted version of each model."""

from __future__ import annotations

from . import _common
from .. import metrics


def register(subparsers) -> None:
    parser = subparsers.add_parser("pull", help="download models (only what is missing), verified, atomically")
    _common.add_bucket(parser)
    _common.add_dest(parser)
    _common.add_models(parser)
    _common.add_transfer(parser)
    _common.add_view(parser)
    _common.add_trust_key(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..errors import JobFailed
    from ..pull import pull

    bucket, prefix = _common.bucket_and_prefix(args)
    wanted = _common.models(args)
    layout = _common.view_layout(args, wanted)  # before anything is downloaded
    workers = _common.concurrency(args)
    trust = _common.trust(args)
    progress = _common.make_progress(args)
    try:
        result = pull(_common.client_for(args, workers), bucket, args.dest, wanted,
                      prefix=prefix, concurrency=workers, progress=progress, part_size=_common.part_size(args),
                      trust=trust)
    except JobFailed as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            _print(progress, partial, failed=True)
        raise
    _print(progress, result, failed=False)
    if layout:
        _common.build_view(args, layout, [f"{m.name}@{m.version}" for m in result.models])
    return 0


def _print(progress, result, *, failed: bool) -> None:
    _common.print_summary(progress, _common.summary(
        "pull", result.downloaded_files, result.downloaded_bytes, result.skipped_files, result.seconds,
        failed=failed, models=[f"{m.name}@{m.version}" for m in result.models],
    ))
    metrics.pull_finished(result, progress, failed=failed)
