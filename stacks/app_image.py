"""What an app's `image` setting names: the demo app, a tag in the project's ECR repository, an image in
another ECR repository, or an image in any other registry. Parsed once, used by the settings checks and
by the service construct.

    ""                                                   the demo app (modelsync's own image, `modelsync serve`)
    v1.2.3                                               a tag in the project's ECR repository (no ':', '/', '@')
    123456789012.dkr.ecr.eu-west-1.amazonaws.com/r:t     an ECR image: the execution role may pull exactly that repo
    ghcr.io/org/app:1.0, nginx:1.27, repo@sha256:<hex>   any registry, with a tag or a digest (never an implicit latest)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from stacks.errors import SettingsError

_TAG = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"
_REGISTRY = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_REGISTRY}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_PROJECT_TAG = re.compile(rf"^{_TAG}$")
_ECR = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>.+)$"
)


@dataclass(frozen=True)
class AppImage:
    kind: str  # "demo", "project", "ecr" or "registry"
    reference: str = ""  # the whole value
    tag_or_digest: str = ""  # project and ecr: what to pull from the repository
    account: str = ""  # ecr
    region: str = ""  # ecr
    repository: str = ""  # ecr


def parse_app_image(value: str, where: str) -> AppImage:
    """What `value` names; SettingsError naming `where` (the setting) when it is no image reference."""
    if not value:
        return AppImage("demo")
    if _PROJECT_TAG.fullmatch(value) and not any(c in value for c in ":/@"):
        return AppImage("project", value, tag_or_digest=value)
    match = _REFERENCE.fullmatch(value)
    if not match:
        _refuse(where, value, "it is not an image reference")
    if not (match["tag"] or match["digest"]):
        _refuse(where, value, "it has no tag or digest (that would deploy whatever :latest is at the time)")
    ecr = _ECR.fullmatch(match["name"])
    if ecr:
        return AppImage(
            "ecr",
            value,
            tag_or_digest=match["digest"] or match["tag"],
            account=ecr["account"],
            region=ecr["region"],
            repository=ecr["repository"],
        )
    return AppImage("registry", value)


def _refuse(where: str, value: str, why: str) -> NoReturn:
    raise SettingsError(
        f"{where} = {value!r} is not allowed: {why}; use REPOSITORY:TAG or "
        "REPOSITORY@sha256:DIGEST from any registry, a bare tag of the project's ECR repository, "
        "or empty for the demo app"
    )
