"""modelsync view: build or refresh a view DIR of links to verified versions, arranged by a layout."""

from __future__ import annotations

from ..options import BAD_INPUT, finish, option
from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "view",
        help="link verified models into DIR in the layout an app expects (atomic refresh)",
        description="Build or refresh the view DIR: links to verified version directories of DEST, arranged by a "
        "layout. The switch to the new links is atomic; nothing is copied. --store bucket: DEST is the bucket's "
        "prefix mounted read-only (S3 Files); each version is checked at size level first (no signatures: "
        "verify --store bucket --view checks those) and the view holds one link per file of its manifest.",
    )
    option(parser, "dir", env="MODELSYNC_VIEW", nargs="?", metavar="DIR", help="the view directory")
    _common.add_dest(parser)
    _common.add_store(parser)
    _common.add_models(parser)
    _common.add_layout(parser)
    option(parser, "--list-layouts", action="store_true", help="print the layouts and what they do, then exit")
    finish(
        parser,
        example="modelsync view /srv/app-models --dest /models --layout flat --model ocr@2026-01-01",
        exit_codes={
            0: "view built or unchanged",
            1: "a named version is not recorded in DEST (--store bucket: not complete in the tree)",
            2: BAD_INPUT,
        },
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..errors import ModelsyncError
    from ..view import build_view

    if args.list_layouts:
        return _list_layouts(args)
    if not args.dir:
        raise ModelsyncError("no view directory given: pass DIR or set MODELSYNC_VIEW")
    layout = _common.chosen_layout(args)
    models, source = args.models, None
    if args.store == "bucket":
        from ..bucket_verify import verify_bucket
        from ..errors import JobFailed

        states = verify_bucket(args.dest, models)
        problems = [p for s in states for p in s.problems]
        if problems:
            more = f" (and {len(problems) - 1} more: modelsync verify --store bucket)" if len(problems) > 1 else ""
            raise JobFailed(problems[0] + more)
        models, source = [f"{s.name}@{s.version}" for s in states], _common.bucket_view_source(args.dest, states)
    _common.print_view_summary(build_view(args.dir, args.dest, layout, models, source=source), layout)
    return 0


def _list_layouts(args) -> int:
    layouts = _common.layouts_of(args)
    for name in layouts.names():
        layout = layouts.get(name)
        env = " ".join(f"{k}={v}" for k, v in layout.app_environment("DIR").items()) or "-"
        writable = ", app-writable" if layout.app_writable else ""
        print(f"{name:<12} {layout.description} (app environment: {env}{writable})")
    return 0
