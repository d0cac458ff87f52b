"""modelsync seed: publish the catalog's models to the bucket and mirror them to EFS."""

from __future__ import annotations

import logging
import os
import sys
import tempfile

from modelsync import config, metrics
from modelsync.commands import _common
from modelsync.errors import ModelsyncError
from modelsync.seed.catalog import BUNDLED_CATALOG, HttpsSource, PaddleOCRSource, load_catalog, parse_only
from modelsync.seed.table import format_table
from modelsync.seed.zenodo import DEFAULT_ZENODO_URL


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "seed", help="download the catalog's models, verify them, publish them (and mirror them to EFS)",
        description="For each selected catalog entry: skip it when the bucket already holds it from the same "
                    "source; otherwise download (verified), extract safely, check its files, publish. Then bring "
                    "the EFS mirror to each model's LATEST. Exit 1 if any model failed.",
    )
    parser.add_argument("--catalog", default=config.env("MODELSYNC_CATALOG"),
                        help=f"catalog file (env MODELSYNC_CATALOG, default the bundled {BUNDLED_CATALOG.name})")
    parser.add_argument("--only", default=config.env("MODELSYNC_SEED_ONLY"), metavar="NAME,...",
                        help="seed these entries, enabled or not (env MODELSYNC_SEED_ONLY; default the enabled ones)")
    parser.add_argument("--efs-root", default=config.env("MODELSYNC_EFS_ROOT"), metavar="DIR",
                        help="EFS mirror root to update after publishing (env MODELSYNC_EFS_ROOT)")
    parser.add_argument("--mirror-pins", default=config.env("MODELSYNC_MIRROR_PINS"), metavar="NAME@VERSION,...",
                        help="versions the service pins: kept present in the EFS mirror next to LATEST, without "
                             "moving its links (env MODELSYNC_MIRROR_PINS; the seeding task sets it)")
    parser.add_argument("--zenodo-url", default=config.env("ZENODO_URL", DEFAULT_ZENODO_URL),
                        help=f"Zenodo base URL (env ZENODO_URL, default {DEFAULT_ZENODO_URL})")
    parser.add_argument("--workdir", default=None, metavar="DIR",
                        help="scratch space for one model at a time: its archive and extracted tree (default TMPDIR)")
    parser.add_argument("--list", action="store_true", help="print the catalog and the selection, then exit")
    _common.add_bucket(parser)
    _common.add_transfer(parser)
    _common.add_signing_key(parser)
    _common.add_trust_key(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    catalog = load_catalog(args.catalog)
    selected = catalog.select(parse_only(args.only))
    pins = tuple(parse_only(args.mirror_pins))
    for spec in pins:
        if config.parse_model_spec(spec)[1] is None:
            raise ModelsyncError(f"--mirror-pins / MODELSYNC_MIRROR_PINS entry {spec!r} has no version: "
                                 "give NAME@VERSION (only pinned versions are kept beside LATEST)")
    if pins and not args.efs_root:
        raise ModelsyncError("--mirror-pins / MODELSYNC_MIRROR_PINS needs --efs-root / MODELSYNC_EFS_ROOT: "
                             "pinned versions are kept in the EFS mirror")
    if args.list:
        print(format_catalog(catalog, selected))
        return 0
    bucket, prefix = _common.bucket_and_prefix(args)
    workers = _common.concurrency(args)
    if args.workdir and not os.path.isdir(args.workdir):
        raise ModelsyncError(f"--workdir {args.workdir} is not a directory: create it or leave the option out")
    signer, trust = _common.signer(args), _common.trust(args)  # bad keys: exit 2 before any work
    _log_to_stderr()

    from modelsync.seed.run import Seeder, format_report  # boto3 import is slow: only when seeding
    from modelsync.seed.zenodo import ZenodoClient

    with tempfile.TemporaryDirectory(prefix="modelsync-seed-", dir=args.workdir) as workdir:
        seeder = Seeder(
            _common.client_for(args, workers), bucket, prefix=prefix, workdir=workdir,
            zenodo=ZenodoClient(args.zenodo_url), concurrency=workers,
            part_size=_common.part_size(args), progress=_common.make_progress(args),
            signer=signer, trust=trust,
        )
        report = seeder.run(selected, efs_root=args.efs_root, mirror_pins=pins)
    print(format_report(report))
    sys.stdout.flush()
    metrics.seed_finished(report)
    if report.stopped:
        raise report.stopped  # exit 128+N, after the summary
    return 1 if report.failed else 0


def format_catalog(catalog, selected) -> str:
    chosen = {e.name for e in selected}
    rows = [("NAME", "ENABLED", "SELECTED", "APPROX_MB", "SOURCE")]
    for e in catalog.entries:
        source = e.source
        if isinstance(source, PaddleOCRSource):
            where = f"paddleocr {source.paddleocr_version} lang={source.lang}"
        elif isinstance(source, HttpsSource):
            where = source.url
        else:
            where = f"zenodo {source.record}/{source.file}"
        rows.append((e.name, "yes" if e.enabled else "no", "yes" if e.name in chosen else "no",
                     str(e.approx_size_mb), where))
    lines = format_table(rows)
    total = sum(e.approx_size_mb for e in selected)
    lines.append(f"{len(selected)} selected, about {total} MB (estimates) from {catalog.path}")
    return "\n".join(lines)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (it may be replaced after setup)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _log_to_stderr() -> None:
    logger = logging.getLogger("modelsync")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
