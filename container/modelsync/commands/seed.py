"""modelsync seed: publish the catalog's models to the bucket and mirror them to EFS (logic: modelsync/seed/)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from modelsync import metrics
from modelsync.commands import _common
from modelsync.errors import ModelsyncError
from modelsync.options import BAD_INPUT, STOPPED, finish, option
from modelsync.seed.catalog import BUNDLED_CATALOG, format_catalog, load_catalog, parse_only
from modelsync.seed.zenodo import DEFAULT_ZENODO_URL


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "seed",
        help="download the catalog's models, verify them, publish them (and mirror them to EFS)",
        description="For each selected catalog entry: skip it when the bucket already holds it from the same "
        "source; otherwise download (verified), extract safely, check its files, publish. Then bring "
        "the EFS mirror to each model's LATEST. Exit 1 if any model failed. Without a signing key a "
        "model is only staged (files, manifest and the pointer NAME/STAGED; no signatures, no LATEST, "
        "no mirror): `modelsync sign`, run where the key is, publishes it.",
    )
    option(
        parser,
        "--catalog",
        env="MODELSYNC_CATALOG",
        metavar="FILE",
        show_default=f"the bundled {BUNDLED_CATALOG.name}",
        help="catalog file",
    )
    option(
        parser,
        "--only",
        env="MODELSYNC_SEED_ONLY",
        metavar="NAME,...",
        show_default="the enabled entries",
        help="seed these entries, enabled or not",
    )
    _common.add_mirror(parser)
    option(parser, "--zenodo-url", env="ZENODO_URL", default=DEFAULT_ZENODO_URL, help="Zenodo base URL")
    option(
        parser,
        "--workdir",
        metavar="DIR",
        show_default="TMPDIR",
        help="scratch space for one model at a time: its archive and extracted tree",
    )
    option(parser, "--list", action="store_true", help="print the catalog and the selection, then exit")
    _common.add_bucket(parser)
    _common.add_transfer(parser)
    _common.add_download_attempts(parser)
    _common.add_signing_key(parser, show_default="none: stage only, for modelsync sign")
    _common.add_trust_key(parser, show_default="the signing key's public key, else no check")
    finish(
        parser,
        example="modelsync seed --list\nmodelsync seed --bucket s3://my-models --only ocr --efs-root /mnt/efs "
        "--signing-key KEY_ARN\n"
        "modelsync seed --bucket s3://my-models --trust-key KEY_ARN   # stage only; then: modelsync sign",
        exit_codes={
            0: "every selected model is in the bucket (and the mirror), or staged",
            1: "some model failed",
            2: BAD_INPUT,
            "128+N": STOPPED,
        },
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    catalog = load_catalog(args.catalog)
    selected = catalog.select(parse_only(args.only))
    pins = _common.mirror_pins(args)
    if args.list:
        print(format_catalog(catalog, selected))
        return 0
    bucket, prefix = _common.bucket_and_prefix(args)
    workers = args.concurrency
    if args.workdir and not os.path.isdir(args.workdir):
        raise ModelsyncError(f"--workdir {args.workdir} is not a directory: create it or leave the option out")
    signer, trust = _common.signer(args), _common.trust(args)  # bad keys: exit 2 before any work
    from modelsync.seed.run import Seeder, format_report, log_to_stderr  # boto3 import is slow: only when seeding
    from modelsync.seed.zenodo import ZenodoClient

    log_to_stderr()

    with tempfile.TemporaryDirectory(prefix="modelsync-seed-", dir=args.workdir) as workdir:
        seeder = Seeder(
            _common.client_for(args, workers),
            bucket,
            prefix=prefix,
            workdir=Path(workdir),
            zenodo=ZenodoClient(args.zenodo_url),
            concurrency=workers,
            part_size=_common.part_size(args),
            download_attempts=args.download_attempts,
            progress=_common.make_progress(args),
            signer=signer,
            trust=trust,
        )
        report = seeder.run(selected, efs_root=args.efs_root, mirror_pins=pins)
    print(format_report(report))
    sys.stdout.flush()
    metrics.seed_finished(report)
    if report.stopped:
        raise report.stopped  # exit 128+N, after the summary
    return 1 if report.failed else 0
