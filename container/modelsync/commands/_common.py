"""Options shared by the subcommands; defaults come from the MODELSYNC_* environment."""

from __future__ import annotations

import json
import sys

from .. import config, metrics
from ..errors import ModelsyncError
from ..progress import Progress, human_bytes, mib_per_s


def add_bucket(parser) -> None:
    parser.add_argument("--bucket", default=config.default_bucket(),
                        help="models bucket (env MODELSYNC_BUCKET)")
    parser.add_argument("--prefix", default=None, help="key prefix (env MODELSYNC_PREFIX, default models/)")


def add_dest(parser) -> None:
    parser.add_argument("--dest", default=config.default_dest(),
                        help="local model root (env MODELSYNC_DEST, default /models)")


def add_models(parser) -> None:
    parser.add_argument("--model", action="append", dest="models", metavar="NAME[@VERSION]",
                        help="model to handle (repeatable; env MODELSYNC_MODELS, comma list; default all)")


def add_layout(parser) -> None:
    parser.add_argument("--layout", default=None, metavar="LAYOUT",
                        help="how the view arranges the models (env MODELSYNC_LAYOUT, default "
                             f"{config.DEFAULT_LAYOUT}; see modelsync view --list-layouts)")
    parser.add_argument("--layouts", default=config.default_layouts_file(), metavar="FILE",
                        help="layouts file (env MODELSYNC_LAYOUTS, default the bundled modelsync/layouts.yaml)")


def add_view(parser) -> None:
    """--view/--layout on pull and verify: build the view after success, from what they checked."""
    parser.add_argument("--view", default=config.default_view(), metavar="DIR",
                        help="after success, build or refresh the view DIR of exactly these models "
                             "(env MODELSYNC_VIEW; see modelsync view)")
    add_layout(parser)


def chosen_layout(args):
    from ..layouts import load_layouts

    return load_layouts(args.layouts).get(args.layout or config.default_layout() or config.DEFAULT_LAYOUT)


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


def build_view(args, layout, models: list[str]) -> None:
    """Build the view of exactly `models` (NAME@VERSION) and print its summary."""
    from ..view import build_view as build

    print_view_summary(build(args.view, args.dest, layout, models), layout)


def print_view_summary(result, layout) -> None:
    metrics.view_finished(result)
    environment = layout.app_environment(result.view)
    if sys.stdout.isatty():
        state = "built" if result.changed else "unchanged"
        env_text = " ".join(f"{k}={v}" for k, v in environment.items()) or "none"
        print(f"view {result.view} ({result.layout}, {state}): {len(result.links)} links for "
              f"{', '.join(result.models)}; app environment: {env_text}")
        for path, target in result.links.items():
            print(f"  {path} -> {target}")
    else:
        print(json.dumps({"event": "summary", "action": "view", "view": result.view, "layout": result.layout,
                          "generation": result.generation, "changed": result.changed, "models": result.models,
                          "links": result.links, "removed": result.removed, "app_environment": environment,
                          "app_writable": layout.app_writable}, sort_keys=True))
    sys.stdout.flush()


def add_signing_key(parser) -> None:
    parser.add_argument("--signing-key", default=config.default_signing_key(), metavar="KEY",
                        help="sign manifests and LATEST: KMS key ARN, alias/NAME or PEM private key file "
                             "(env MODELSYNC_SIGNING_KEY; default unsigned)")


def add_trust_key(parser) -> None:
    parser.add_argument("--trust-key", default=config.default_trust_key(), metavar="KEY",
                        help="refuse versions not signed by this key: KMS key ARN, alias/NAME or PEM public key "
                             "file (env MODELSYNC_TRUST_KEY; default no signature check)")


def signer(args):
    from ..signing import load_signer

    return load_signer(args.signing_key)


def trust(args):
    """The trust key's Verifier (a bad key is a one-line error, exit 2, before any work), or None."""
    from ..signing import trust_verifier

    return trust_verifier(args.trust_key)


def add_transfer(parser) -> None:
    parser.add_argument("--concurrency", type=int, default=None,
                        help="parallel transfers (env MODELSYNC_CONCURRENCY, default 16)")
    parser.add_argument("--part-size-mib", type=int, default=None,
                        help="byte-range/multipart part size in MiB (env MODELSYNC_PART_SIZE_MIB, default 32)")
    parser.add_argument("--progress", choices=("auto", "bar", "json", "quiet"), default="auto",
                        help="progress display: bar on a terminal, JSON lines otherwise (auto)")


def bucket_and_prefix(args) -> tuple[str, str]:
    bucket = config.require_bucket(args.bucket)
    prefix = config.normalize_prefix(args.prefix) if args.prefix is not None else config.default_prefix()
    return bucket, prefix


def models(args) -> list[str] | None:
    return args.models or config.default_models()


def concurrency(args) -> int:
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise ModelsyncError("--concurrency must be at least 1")
        return args.concurrency
    return config.default_concurrency()


def part_size(args) -> int:
    if args.part_size_mib is not None:
        if args.part_size_mib < 1:
            raise ModelsyncError("--part-size-mib must be at least 1")
        return args.part_size_mib * 1024 * 1024
    return config.default_part_size()


def make_progress(args) -> Progress:
    return Progress(stream=sys.stderr, mode=None if args.progress == "auto" else args.progress)


def client_for(args, workers: int):
    from ..s3 import LazyClient  # boto3 import is slow: only runs that make a request pay for it

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
    return {"action": action, "files": files, "bytes": nbytes, "skipped": skipped,
            "seconds": round(seconds, 3), "mib_per_s": mib_per_s(nbytes, seconds), **extra}
