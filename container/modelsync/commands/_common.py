"""Options shared by the subcommands (declared with options.option: flag, environment variable, default)."""

from __future__ import annotations

import json
import sys

from .. import config, metrics
from ..errors import ModelsyncError
from ..options import comma_list, option, whole
from ..progress import Progress, human_bytes, mib_per_s


def add_bucket(parser, *, help: str = "models bucket: NAME or s3://NAME[/PREFIX]") -> None:
    option(
        parser,
        "--bucket",
        env="MODELSYNC_BUCKET",
        convert=config.parse_bucket,
        metavar="BUCKET",
        help=help,
    )
    option(parser, "--prefix", env="MODELSYNC_PREFIX", show_default=config.DEFAULT_PREFIX, help="key prefix")


def add_dest(parser) -> None:
    option(parser, "--dest", env="MODELSYNC_DEST", default=config.DEFAULT_DEST, metavar="DIR", help="local model root")


STORES = ("local", "bucket")


def add_store(parser) -> None:
    """verify, view, serve: which kind of model root DEST is."""

    def store(raw: str) -> str:
        if str(raw).strip().lower() not in STORES:
            raise ValueError(f"is not a store: use {' or '.join(STORES)}")
        return str(raw).strip().lower()

    option(
        parser,
        "--store",
        env="MODELSYNC_STORE",
        default="local",
        convert=store,
        metavar="{local,bucket}",
        help="local: the store pull writes (DEST/.modelsync); bucket: DEST is the models bucket's prefix mounted "
        "read-only (S3 Files), laid out as the bucket",
    )


def add_models(parser) -> None:
    option(
        parser,
        "--model",
        env="MODELSYNC_MODELS",
        dest="models",
        action="append",
        metavar="NAME[@VERSION]",
        show_default="every model at LATEST",
        help="model to handle (repeatable; the variable: a comma list)",
    )


def add_port(parser) -> None:
    option(
        parser,
        "--port",
        env="MODELSYNC_PORT",
        default=config.DEFAULT_PORT,
        convert=whole(0, 65535, problem="is not a TCP port: use a number in 0-65535 (0: any free port)"),
        help="HTTP port",
    )


def add_layout(parser) -> None:
    option(
        parser,
        "--layout",
        env="MODELSYNC_LAYOUT",
        metavar="LAYOUT",
        show_default=config.DEFAULT_LAYOUT,
        help="how the view arranges the models (see modelsync view --list-layouts)",
    )
    option(
        parser,
        "--layouts",
        env="MODELSYNC_LAYOUTS",
        metavar="FILE",
        show_default="the bundled modelsync/layouts.yaml",
        help="layouts file",
    )
    option(
        parser,
        "--layout-rules",
        env="MODELSYNC_LAYOUT_RULES",
        metavar="JSON",
        help="a layouts document given inline, used instead of --layouts: the task definitions carry the "
        "rules synth checked, so the view never depends on the layouts file inside the image",
    )


def add_view(parser) -> None:
    """--view/--layout on pull and verify: build the view after success, from what they checked."""
    option(
        parser,
        "--view",
        env="MODELSYNC_VIEW",
        metavar="DIR",
        help="after success, build or refresh the view DIR of exactly these models (see modelsync view)",
    )
    add_layout(parser)


def layouts_of(args):
    """The layouts --layout chooses from: --layout-rules when given, else the --layouts file."""
    from ..layouts import load_layouts, load_layouts_text

    if args.layout_rules:
        return load_layouts_text(args.layout_rules, "--layout-rules / MODELSYNC_LAYOUT_RULES")
    return load_layouts(args.layouts)


def chosen_layout(args):
    return layouts_of(args).get(args.layout or config.DEFAULT_LAYOUT)


def view_layout(args, wanted: list[str] | None):
    """The Layout of --view, checked before any work: a bad layout name or file, or a wanted model
    it cannot place, is a ModelsyncError (exit 2). None when no view is asked for."""
    if not args.view:
        if args.layout:
            raise ModelsyncError(f"--layout {args.layout} needs a view: pass --view DIR or set MODELSYNC_VIEW")
        return None
    layout = chosen_layout(args)
    if wanted:
        layout.check([config.parse_model_spec(m)[0] for m in wanted])
    return layout


def build_view(args, layout, models: list[str], source=None) -> None:
    """Build the view of exactly `models` (NAME@VERSION) and print its summary (source: view.build_view's)."""
    from ..view import build_view as build

    print_view_summary(build(args.view, args.dest, layout, models, source=source), layout)


def bucket_view_source(dest: str, states):
    """What a view over the bucket tree links: the files of the manifests verify_bucket checked."""
    from ..bucket_store import BucketStore
    from ..view import ManifestFiles

    return ManifestFiles(BucketStore(dest), [s.record.manifest for s in states if s.record is not None])


def print_view_summary(result, layout) -> None:
    metrics.view_finished(result)
    environment = layout.app_environment(result.view)
    if sys.stdout.isatty():
        state = "built" if result.changed else "unchanged"
        env_text = " ".join(f"{k}={v}" for k, v in environment.items()) or "none"
        print(
            f"view {result.view} ({result.layout}, {state}): {len(result.links)} links for "
            f"{', '.join(result.models)}; app environment: {env_text}"
        )
        for path, target in result.links.items():
            print(f"  {path} -> {target}")
    else:
        print(
            json.dumps(
                {
                    "event": "summary",
                    "action": "view",
                    "view": result.view,
                    "layout": result.layout,
                    "generation": result.generation,
                    "changed": result.changed,
                    "models": result.models,
                    "links": result.links,
                    "removed": result.removed,
                    "app_environment": environment,
                    "app_writable": layout.app_writable,
                },
                sort_keys=True,
            )
        )
    sys.stdout.flush()


def add_mirror(parser) -> None:
    """seed (signing in one step), sign: the EFS mirror brought up to date after LATEST moved."""
    option(
        parser, "--efs-root", env="MODELSYNC_EFS_ROOT", metavar="DIR", help="EFS mirror root to update after publishing"
    )
    option(
        parser,
        "--mirror-pins",
        env="MODELSYNC_MIRROR_PINS",
        metavar="NAME@VERSION,...",
        help="versions the service pins: kept present in the EFS mirror next to LATEST, without moving its links "
        "(the seeding task sets it)",
    )


def mirror_pins(args) -> tuple[str, ...]:
    """--mirror-pins, checked before any work: NAME@VERSION entries, and only with --efs-root."""
    pins = tuple(comma_list(args.mirror_pins))
    for spec in pins:
        if config.parse_model_spec(spec)[1] is None:
            raise ModelsyncError(
                f"--mirror-pins / MODELSYNC_MIRROR_PINS entry {spec!r} has no version: "
                "give NAME@VERSION (only pinned versions are kept beside LATEST)"
            )
    if pins and not args.efs_root:
        raise ModelsyncError(
            "--mirror-pins / MODELSYNC_MIRROR_PINS needs --efs-root / MODELSYNC_EFS_ROOT: "
            "pinned versions are kept in the EFS mirror"
        )
    return pins


def add_signing_key(parser, *, show_default: str = "unsigned") -> None:
    option(
        parser,
        "--signing-key",
        env="MODELSYNC_SIGNING_KEY",
        metavar="KEY",
        show_default=show_default,
        help="sign manifests and LATEST: KMS key ARN or PEM private key file",
        empty="give a KMS key ARN or a PEM private key file, or leave the setting out",
    )


def add_trust_key(parser, *, show_default: str = "no signature check") -> None:
    option(
        parser,
        "--trust-key",
        env="MODELSYNC_TRUST_KEY",
        metavar="KEY",
        show_default=show_default,
        help="refuse versions not signed by this key: KMS key ARN or PEM public key file",
        empty="give a KMS key ARN or a PEM public key file, or leave the setting out to check no signatures",
    )


def add_max_latest_age(parser) -> None:
    from ..freshness import parse_age

    option(
        parser,
        "--max-latest-age",
        env="MODELSYNC_MAX_LATEST_AGE",
        convert=parse_age,
        metavar="AGE",
        show_default="no limit",
        help="with --trust-key, refuse a LATEST signed longer ago than AGE (e.g. 36h, 7d; docs/runbook.md)",
    )


def add_wait_for_files(parser) -> None:
    from ..freshness import parse_age

    option(
        parser,
        "--wait-for-files",
        env="MODELSYNC_WAIT_FOR_FILES",
        default=0,
        convert=lambda raw: parse_age(raw, minimum=0, example="90s, 5m or 0 (no wait)"),
        metavar="DURATION",
        help="--store bucket: how long to wait for a version's manifest and files that are missing or not at "
        "their size yet (S3 Files shows new objects after seconds); e.g. 90s, 5m",
    )


def max_latest_age(args, trust) -> int | None:
    """--max-latest-age, which only a signed LATEST can satisfy: without a trust key it is bad input."""
    if args.max_latest_age is not None and trust is None:
        raise ModelsyncError(
            "--max-latest-age / MODELSYNC_MAX_LATEST_AGE needs --trust-key / MODELSYNC_TRUST_KEY: "
            "only a signed LATEST has a signing time"
        )
    return args.max_latest_age


def add_sign_only(parser) -> None:
    """sign, resign: which models (the signing step's own variable, not seed's)."""
    option(
        parser,
        "--only",
        env="MODELSYNC_SIGN_ONLY",
        metavar="NAME,...",
        show_default="every model",
        help="only these models",
    )


def sign_only(args) -> list[str] | None:
    from ..config import check_name

    names = comma_list(args.only)
    for name in names:
        try:
            check_name(name)
        except ModelsyncError as exc:
            raise ModelsyncError(f"--only / MODELSYNC_SIGN_ONLY: {exc}") from None
    return names or None


def required_signer(args, command: str):
    """The signing key's Signer; the signing commands have nothing to do without one (exit 2)."""
    if not args.signing_key:
        raise ModelsyncError(
            f"modelsync {command} needs --signing-key / MODELSYNC_SIGNING_KEY: the store's signing key "
            "(KMS key ARN) or a PEM private key file"
        )
    return signer(args)


def signer(args):
    from ..keys import load_signer

    return load_signer(args.signing_key)


def trust(args):
    """The trust key's Verifier (a bad key is a one-line error, exit 2, before any work), or None."""
    from ..keys import trust_verifier

    return trust_verifier(args.trust_key)


def add_download_attempts(parser) -> None:
    """pull, and seed's mirror step: how often one byte range is fetched again after a broken body."""
    option(
        parser,
        "--download-attempts",
        env="MODELSYNC_DOWNLOAD_ATTEMPTS",
        default=config.DEFAULT_DOWNLOAD_ATTEMPTS,
        convert=whole(1),
        metavar="N",
        help="tries of one byte range whose body breaks half-way (each request also gets AWS_MAX_ATTEMPTS)",
    )


def add_transfer(parser) -> None:
    option(
        parser,
        "--concurrency",
        env="MODELSYNC_CONCURRENCY",
        default=config.DEFAULT_CONCURRENCY,
        convert=whole(1),
        metavar="N",
        help="parallel transfers",
    )
    option(
        parser,
        "--part-size-mib",
        env="MODELSYNC_PART_SIZE_MIB",
        default=config.DEFAULT_PART_SIZE_MIB,
        convert=whole(1),
        metavar="N",
        help="byte-range/multipart part size in MiB",
    )
    option(
        parser,
        "--progress",
        choices=("auto", "bar", "json", "quiet"),
        default="auto",
        help="progress display: bar on a terminal, JSON lines otherwise",
    )


def bucket_and_prefix(args) -> tuple[str, str]:
    return config.bucket_and_prefix(args.bucket, args.prefix)


def part_size(args) -> int:
    return args.part_size_mib * 1024 * 1024


def make_progress(args) -> Progress:
    return Progress(stream=sys.stderr, mode=None if args.progress == "auto" else args.progress)


def client_for(args, workers: int):
    from ..s3 import LazyClient, retry_settings  # boto3 import is slow: only runs that make a request pay for it

    retry_settings()  # a bad AWS_RETRY_MODE / AWS_MAX_ATTEMPTS: one line, exit 2, before any work
    # Range and file workers both hold connections (see download.Downloader).
    return LazyClient(max_pool_connections=max(10, 2 * workers + 2))


def print_summary(progress: Progress, summary: dict) -> None:
    """The closing summary: a readable line on a terminal, one JSON object otherwise."""
    if progress.mode == "bar" or (progress.mode == "quiet" and sys.stdout.isatty()):
        print(
            f"{summary['action']}: {summary['files']} files ({human_bytes(summary['bytes'])}), "
            f"{summary['skipped']} already in place, {summary['seconds']:.2f} s, {summary['mib_per_s']} MiB/s"
        )
    else:
        print(json.dumps({"event": "summary", **summary}, sort_keys=True))
    sys.stdout.flush()


def summary(action: str, files: int, nbytes: int, skipped: int, seconds: float, **extra) -> dict:
    return {
        "action": action,
        "files": files,
        "bytes": nbytes,
        "skipped": skipped,
        "seconds": round(seconds, 3),
        "mib_per_s": mib_per_s(nbytes, seconds),
        **extra,
    }
