"""modelsync url NAME[@VERSION]: presigned GET URLs of every file of one version (share it without bucket access)."""

from __future__ import annotations

from ..options import BAD_INPUT, finish, option, whole
from . import _common

MAX_EXPIRES = 604800  # SigV4 presigned URLs live at most 7 days


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "url",
        help="print presigned URLs of a version's files",
        description="Print one line per file of the version (LATEST when no version is given): its path, size "
        "in bytes, sha256 and a presigned (SigV4) GET URL, separated by tabs, so someone without access to "
        "the bucket can download that version for --expires seconds. Nothing checks what such a URL "
        "delivers: the receiver must compare each file's size and sha256 with these (the second example). "
        "The URLs carry your credentials' authority: a URL made with temporary credentials stops working "
        "when they expire. With a trust key, nothing is printed for a version whose manifest (and LATEST, "
        "when no version is given) is not signed by it, so the sizes and sha256s printed are signed ones.",
    )
    parser.add_argument("model", metavar="NAME[@VERSION]", help="the model, and the version (default LATEST)")
    option(
        parser,
        "--expires",
        default=3600,
        metavar="SECONDS",
        convert=whole(1, MAX_EXPIRES, problem=f"is not 1-{MAX_EXPIRES} seconds (SigV4 URLs last at most 7 days)"),
        help="how long the URLs work",
    )
    _common.add_bucket(parser)
    _common.add_trust_key(parser)
    finish(
        parser,
        example="modelsync url ocr@2026-01-01 --bucket s3://my-models --expires 86400\n"
        "modelsync url ocr --trust-key KEY | while IFS=$'\\t' read -r path size sha256 url; do\n"
        '  curl -fsS --create-dirs -o "$path" "$url" && echo "$sha256  $path" | sha256sum -c --quiet - || exit 1; done',
        exit_codes={
            0: "URLs printed",
            1: "no such model or version in the bucket, or (with a trust key) not signed by it",
            2: BAD_INPUT,
        },
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from .. import config
    from ..errors import JobFailed
    from ..manifest import file_key, read_latest_version, read_manifest
    from ..signing import refused
    from ..trust import published_problem

    name, version = config.parse_model_spec(args.model)
    through_latest = version is None
    bucket, prefix = _common.bucket_and_prefix(args)
    trust = _common.trust(args)
    client = _common.client_for(args, 4)
    where = f"s3://{bucket}/{prefix}"
    if version is None:
        version = read_latest_version(client, bucket, name, prefix=prefix)
        if version is None:
            raise JobFailed(f"model {name!r} not found in {where}: check the name and --prefix (modelsync list)")
    manifest = read_manifest(client, bucket, name, version, prefix=prefix)
    if manifest is None:
        raise JobFailed(
            f"version {version!r} of model {name!r} not found in {where}: run `modelsync list` to see "
            "the published versions"
        )
    if trust is not None:  # never hand out a version the app itself would refuse to load
        problem = published_problem(client, bucket, prefix, manifest, trust, latest=through_latest)
        if problem:  # "<where>: <what it has>"
            where, _, what = problem.rpartition(": ")
            raise refused(where, what)
    for entry in manifest.files:
        url = client.generate_presigned_url(
            "get_object",
            ExpiresIn=args.expires,
            Params={"Bucket": bucket, "Key": file_key(prefix, name, version, entry.path)},
        )
        print(f"{entry.path}\t{entry.size}\t{entry.sha256}\t{url}")
    return 0
