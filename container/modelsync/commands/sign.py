"""modelsync sign: the signing step; sign what the seed staged, move LATEST, mirror (logic: modelsync/sign.py).

Imports nothing of modelsync.seed: archive parsing and model downloads do not run where the key is."""

from __future__ import annotations

import sys

from ..options import BAD_INPUT, STOPPED, finish
from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sign",
        help="sign the versions a seed staged, move LATEST, and mirror them to EFS",
        description="For each model with a staged version (NAME/STAGED, written by a seed without the signing "
        "key): re-hash every file of it from the bucket (sha256 and size against its manifest, nothing missing "
        "or extra), then write its signatures (manifest signature, OMS bundle model.sig), move LATEST to it "
        "with the next sequence and remove the staging pointer. A version that does not match its manifest "
        "is refused in one line and not signed. Then bring the EFS mirror to each model's LATEST, as the "
        "seed does when it signs itself.",
    )
    _common.add_bucket(parser)
    _common.add_sign_only(parser)
    _common.add_mirror(parser)
    _common.add_transfer(parser)
    _common.add_download_attempts(parser)
    _common.add_signing_key(parser, show_default="none: required")
    _common.add_trust_key(parser, show_default="the signing key's public key (the mirror's pulls)")
    finish(
        parser,
        example="modelsync seed --bucket s3://my-models   # no signing key: stages\n"
        "modelsync sign --bucket s3://my-models --signing-key KEY_ARN --efs-root /mnt/models",
        exit_codes={
            0: "every staged version is signed and LATEST moved (or nothing was staged), and the mirror is up to date",
            1: "a staged version was refused or failed (one FAILED line each), or the mirror failed",
            2: BAD_INPUT,
            "128+N": STOPPED,
        },
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..mirror import Mirror
    from ..sign import format_report, mirrored_models, sign_staged

    bucket, prefix = _common.bucket_and_prefix(args)
    pins = _common.mirror_pins(args)
    signer = _common.required_signer(args, "sign")
    trust = _common.trust(args) or signer.verifier()
    only = _common.sign_only(args)
    client = _common.client_for(args, args.concurrency)
    progress = _common.make_progress(args)
    report = sign_staged(client, bucket, prefix, signer, only=only, concurrency=args.concurrency, progress=progress)
    if args.efs_root and report.stopped is None:
        mirror = Mirror(
            client,
            bucket,
            prefix,
            concurrency=args.concurrency,
            part_size=_common.part_size(args),
            download_attempts=args.download_attempts,
            progress=progress,
            trust=trust,
        )
        report.mirror = mirror.run(args.efs_root, mirrored_models(client, bucket, prefix, only), pins)
        report.stopped = report.mirror.stopped
    print(format_report(report))
    sys.stdout.flush()
    from .. import metrics

    metrics.mirror_finished(report.mirror)
    if report.stopped:
        raise report.stopped  # exit 128+N, after the summary
    return 1 if report.failed else 0
