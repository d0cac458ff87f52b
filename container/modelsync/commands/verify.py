"""modelsync verify: exit 0 only when every model under DEST matches its manifest."""

from __future__ import annotations

import json
import sys

from .. import metrics
from ..options import BAD_INPUT, finish, option, switch
from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check the local models against their manifests",
        description="Check every model under DEST (or the ones named) against its manifest: sizes, missing and "
        "unexpected files, and the sha256 of each file whose stat (size, mtime, ctime, inode) moved off its "
        "record; --deep hashes every byte on all cores. One line per problem on stderr; --json prints the "
        "result as one JSON object on stdout. A store someone else owns or may write is refused (exit 2). "
        "--store bucket: DEST is the bucket's prefix mounted read-only (S3 Files); each model's version (a pin, "
        "or LATEST) and its signed manifest are checked against the tree (every file at its size, none more), "
        "waiting up to --wait-for-files for files not visible yet.",
    )
    _common.add_dest(parser)
    _common.add_store(parser)
    _common.add_models(parser)
    option(
        parser,
        "--deep",
        env="MODELSYNC_DEEP",
        action="store_true",
        convert=switch,
        help="also check the sha256 of every byte (all cores); the variable: true or false",
    )
    _common.add_wait_for_files(parser)
    option(
        parser,
        "--json",
        action="store_true",
        help='print {"ok": ..., "models": [{"name", "version", "files", "bytes", "ok", "problems"}]}',
    )
    _common.add_view(parser)
    _common.add_trust_key(parser)
    _common.add_max_latest_age(parser)
    _common.add_bucket(
        parser,
        help="with --trust-key, the repository the LATEST kept for each model must be signed for "
        "(default: not checked); verify makes no S3 request",
    )
    finish(
        parser,
        example="modelsync verify --dest /models --deep\nmodelsync verify --model ocr@2026-01-01 --json\n"
        "modelsync verify --trust-key KEY_ARN --max-latest-age 7d --bucket s3://my-models/models\n"
        "modelsync verify --store bucket --dest /models --wait-for-files 90s --view /var/lib/modelsync/view",
        exit_codes={
            0: "every model matches its manifest",
            1: "problems found (one line each on stderr)",
            2: BAD_INPUT + "; an unsafe store (owned by another uid, writable by others, a link under .modelsync)",
        },
        s3=False,
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..errors import ModelsyncError
    from ..verify import verify

    wanted = args.models
    layout = _common.view_layout(args, wanted)  # bad input: exit 2 before checking anything
    trust = _common.trust(args)
    repository = None
    if args.bucket is not None:
        from ..freshness import repository as repo

        repository = repo(*_common.bucket_and_prefix(args))
    check = dict(deep=args.deep, trust=trust, repository=repository, max_latest_age=_common.max_latest_age(args, trust))
    if args.store == "bucket":
        from ..bucket_verify import verify_bucket

        states = verify_bucket(args.dest, wanted, wait=args.wait_for_files, **check)
    elif args.wait_for_files:
        raise ModelsyncError(
            "--wait-for-files / MODELSYNC_WAIT_FOR_FILES needs --store bucket / MODELSYNC_STORE=bucket: "
            "a local store holds only versions pull completed"
        )
    else:
        states = verify(args.dest, wanted, **check)
    problems = [p for s in states for p in s.problems]
    for problem in problems:
        print(problem, file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": not problems,
                    "dest": args.dest,
                    "deep": args.deep,
                    "models": [
                        {
                            "name": s.name,
                            "version": s.version,
                            "files": s.files,
                            "bytes": s.bytes,
                            "ok": not s.problems,
                            "problems": s.problems,
                        }
                        for s in states
                    ],
                },
                sort_keys=True,
            )
        )
    else:
        for state in states:
            if state.version:
                status = "ok" if not state.problems else "FAILED"
                print(f"{state.name}@{state.version}: {state.files} files, {state.bytes} bytes: {status}")
    sys.stdout.flush()
    metrics.verify_finished(states)
    if problems:
        return 1
    if layout:
        source = _common.bucket_view_source(args.dest, states) if args.store == "bucket" else None
        _common.build_view(args, layout, [f"{s.name}@{s.version}" for s in states], source=source)
    return 0
