"""modelsync publish DIR --name NAME: upload a model folder as a new immutable version."""

from __future__ import annotations

import json
import time

from ..options import BAD_INPUT, STOPPED, finish, option
from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "publish",
        help="publish a local model folder as a version",
        description="Upload every file of DIRECTORY, then manifest.json, then LATEST. The version is derived "
        "from the content: publishing the same content again uploads nothing and prints the same "
        "version. stdout carries only the version.",
    )
    parser.add_argument("directory", help="model folder to publish")
    parser.add_argument("--name", required=True, help="model name")
    option(parser, "--source", help="JSON object stored as the manifest's source")
    _common.add_bucket(parser)
    _common.add_transfer(parser)
    _common.add_signing_key(parser)
    finish(
        parser,
        example="modelsync publish ./ocr-model --name ocr --bucket s3://my-models/models",
        exit_codes={
            0: "published (the version on stdout)",
            1: "an upload failed or a file changed meanwhile",
            2: BAD_INPUT,
            "128+N": STOPPED,
        },
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..errors import ModelsyncError
    from ..publish import publish_directory

    bucket, prefix = _common.bucket_and_prefix(args)
    source = None
    if args.source:
        try:
            source = json.loads(args.source)
            assert isinstance(source, dict)
        except (ValueError, AssertionError):
            raise ModelsyncError('--source must be a JSON object, e.g. \'{"url": "..."}\'') from None
    workers = args.concurrency
    signer = _common.signer(args)
    progress = _common.make_progress(args)
    started = time.monotonic()
    result = publish_directory(
        _common.client_for(args, workers),
        bucket,
        args.name,
        args.directory,
        prefix=prefix,
        source=source,
        concurrency=workers,
        progress=progress,
        part_size=_common.part_size(args),
        signer=signer,
    )
    seconds = time.monotonic() - started
    summary = _common.summary(
        "publish",
        result.uploaded_files,
        result.uploaded_bytes,
        result.skipped_files,
        seconds,
        model=result.name,
        version=result.version,
        unchanged=result.unchanged,
    )
    if progress.mode == "json":
        progress.event("summary", **summary)
    else:
        progress.stream.write(
            f"published {result.name}@{result.version}: {result.uploaded_files} files uploaded, "
            f"{result.skipped_files} already there{' (unchanged)' if result.unchanged else ''}\n"
        )
    print(result.version)  # stdout carries only the version, for scripts
    return 0
