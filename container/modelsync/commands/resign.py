"""modelsync resign: sign published versions and LATEST again in the current format (logic: modelsync/resign.py)."""

from __future__ import annotations

import sys

from ..options import BAD_INPUT, STOPPED, finish, option
from . import _common


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "resign",
        help="sign published versions and LATEST again, in the current format",
        description="For every model (or --only): each version whose signatures verify with the trust key "
        "(default: the signing key's own public key; during a key rotation, the old key) gets the current "
        "format, signed with the signing key: the manifest signature and the OMS bundle (model.sig); then "
        "LATEST gets a statement with the next sequence. Anything that does not verify is refused, never "
        "signed. --latest-only re-signs only LATEST, unchanged but with a fresh signing time, so readers can "
        "use --max-latest-age: run it on a schedule shorter than that age.",
    )
    _common.add_bucket(parser)
    _common.add_sign_only(parser)
    option(
        parser,
        "--latest-only",
        action="store_true",
        help="re-sign only LATEST: same version, next sequence, fresh signing time",
    )
    _common.add_signing_key(parser, show_default="none: required")
    _common.add_trust_key(parser, show_default="the signing key's public key")
    finish(
        parser,
        example="modelsync resign --bucket s3://my-models/models --signing-key KEY_ARN\n"
        "modelsync resign --latest-only --signing-key KEY_ARN   # daily, for --max-latest-age 7d\n"
        "modelsync resign --signing-key NEW_KEY_ARN --trust-key OLD_KEY_ARN   # a key rotation",
        exit_codes={
            0: "everything is signed in the current format",
            1: "something was refused (one REFUSED line each; the rest was signed)",
            2: BAD_INPUT,
            "128+N": STOPPED,
        },
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..resign import resign
    from ..table import format_table

    bucket, prefix = _common.bucket_and_prefix(args)
    signer = _common.required_signer(args, "resign")
    trust = _common.trust(args)
    outcomes = resign(
        _common.client_for(args, 4),
        bucket,
        prefix,
        signer,
        trust=trust,
        models=_common.sign_only(args),
        latest_only=args.latest_only,
    )
    rows = [("MODEL", "WHAT", "STATUS")] + [(o.name, o.what, o.status) for o in outcomes]
    lines = format_table(rows) if outcomes else ["no models"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("re-signed", "current", "refused", "skipped")}
    lines.append("resign: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    lines += [f"REFUSED {o.name} {o.what}: {o.detail}" for o in outcomes if o.status == "refused"]
    print("\n".join(lines))
    sys.stdout.flush()
    return 1 if counts["refused"] else 0
