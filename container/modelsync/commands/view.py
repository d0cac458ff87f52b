"""modelsync view: build or refresh a view DIR of links to verified versions, arranged by a layout."""

from __future__ import annotations

from . import _common
from .. import config


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "view", help="link verified models into DIR in the layout an app expects (atomic refresh)")
    parser.add_argument("dir", nargs="?", default=config.default_view(), metavar="DIR",
                        help="the view directory (env MODELSYNC_VIEW)")
    _common.add_dest(parser)
    _common.add_models(parser)
    _common.add_layout(parser)
    parser.add_argument("--list-layouts", action="store_true", help="print the layouts and what they do, then exit")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..errors import ModelsyncError
    from ..view import build_view

    if args.list_layouts:
        return _list_layouts(args)
    if not args.dir:
        raise ModelsyncError("no view directory given: pass DIR or set MODELSYNC_VIEW")
    layout = _common.chosen_layout(args)
    _common.print_view_summary(build_view(args.dir, args.dest, layout, _common.models(args)), layout)
    return 0


def _list_layouts(args) -> int:
    from ..layouts import load_layouts

    layouts = load_layouts(args.layouts)
    for name in layouts.names():
        layout = layouts.get(name)
        env = " ".join(f"{k}={v}" for k, v in layout.app_environment("DIR").items()) or "-"
        writable = ", app-writable" if layout.app_writable else ""
        print(f"{name:<12} {layout.description} (app environment: {env}{writable})")
    return 0
