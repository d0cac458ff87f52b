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
    option(
        parser,
        "--verify-oms",
        env="MODELSYNC_VERIFY_OMS",
        metavar="PUBKEY",
        show_default="not checked",
        help="first check DIRECTORY/model.sig, the folder's OMS signature (model_signing sign key): it must be "
        "signed by PUBKEY (PEM public key file or KMS key ARN) and list exactly the folder's files with their "
        "sha256, else nothing is uploaded; model.sig itself is not published as a file",
        empty="give the PEM public key file or KMS key ARN of the training-time signer, or leave it out",
    )
    finish(
        parser,
        example="modelsync publish ./ocr-model --name ocr --bucket s3://my-models/models\n"
        "model_signing sign key ./ocr-model --private_key train.pem --signature ./ocr-model/model.sig\n"
        "modelsync publish ./ocr-model --name ocr --verify-oms train-pub.pem --signing-key KEY_ARN",
        exit_codes={
            0: "published (the version on stdout)",
            1: "an upload failed or a file changed meanwhile; --verify-oms refused the folder (nothing uploaded)",
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
    folder_key = None
    if args.verify_oms:
        from ..keys import load_verifier

        folder_key = load_verifier(args.verify_oms, where=("--verify-oms", "MODELSYNC_VERIFY_OMS"))
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
        verify_oms=folder_key,
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
