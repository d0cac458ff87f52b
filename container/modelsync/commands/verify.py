"""modelsync verify: exit 0 only when every model under DEST matches its manifest."""

from __future__ import annotations

import sys

from . import _common
from .. import metrics


def register(subparsers) -> None:
    parser = subparsers.add_parser("verify", help="check the local models against their manifests")
    _common.add_dest(parser)
    _common.add_models(parser)
    parser.add_argument("--deep", action="store_true", help="also check the sha256 of every byte (all cores)")
    _common.add_view(parser)
    _common.add_trust_key(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..verify import verify

    wanted = _common.models(args)
    layout = _common.view_layout(args, wanted)  # bad input: exit 2 before checking anything
    states = verify(args.dest, wanted, deep=args.deep, trust=_common.trust(args))
    problems = [p for s in states for p in s.problems]
    for problem in problems:
        print(problem, file=sys.stderr)
    for state in states:
        if state.version:
            status = "ok" if not state.problems else "FAILED"
            print(f"{state.name}@{state.version}: {state.files} files, {state.bytes} bytes: {status}")
    metrics.verify_finished(states)
    if problems:
        return 1
    if layout:
        _common.build_view(args, layout, [f"{s.name}@{s.version}" for s in states])
    return 0
